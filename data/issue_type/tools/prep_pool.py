"""Load the shared raw files, normalise, drop exact + near duplicates.

Writes work/pool.jsonl: one row per surviving text with
{"id", "source": "<file>:<row index>", "text", "norm"}.
Row index = 0-based data row (header excluded; jsonl line number for weibo).

Normalisation for duplicate detection only (texts are kept as they are):
NFKC, Traditional->Simplified (OpenCC t2s), lower-case, keep only CJK/letters/digits.
Exact duplicates: identical normalised text. Near duplicates: MinHash (128 perm)
over character 3-grams, LSH Jaccard >= 0.7; the first occurrence is kept.

The shared raw files are read from the project setting ``shared_data``
(FEEDBACK_MINER_SHARED_DATA; default ../shared/data beside the repository), or from the folder
given as the first argument.
"""
import csv
import json
import re
import sys
import unicodedata
from pathlib import Path

from datasketch import MinHash, MinHashLSH
from opencc import OpenCC

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for its packages
OUT = Path(__file__).resolve().parent.parent / "work"
cc = OpenCC("t2s")
KEEP = re.compile(r"[^0-9a-z\u4e00-\u9fff]")


def norm(t: str) -> str:
    t = unicodedata.normalize("NFKC", t)
    t = cc.convert(t).lower()
    return KEEP.sub("", t)


def shared_data_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    from topics.settings import Settings

    return Settings().shared_data


def load(folder: Path):
    for fn in ["waimai_10k.csv", "online_shopping_9_cats.csv", "chnsenticorp_train.csv"]:
        with open(folder / fn, encoding="utf-8-sig", newline="") as f:
            for i, r in enumerate(csv.DictReader(f)):
                yield f"{fn}:{i}", (r.get("review") or "").lstrip("\ufeff"), r
    with open(folder / "weibo_emotion_virus.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            r = json.loads(line)
            yield f"weibo_emotion_virus.jsonl:{i}", r["text"], r


def shingles(s, k=3):
    return {s[i:i + k] for i in range(max(1, len(s) - k + 1))}


def main():
    OUT.mkdir(exist_ok=True)
    seen = set()
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    kept, n_in, n_exact, n_near = [], 0, 0, 0
    for src, text, raw in load(shared_data_dir()):
        n_in += 1
        n = norm(text)
        if len(n) < 4:
            continue
        if n in seen:
            n_exact += 1
            continue
        seen.add(n)
        m = MinHash(num_perm=128)
        for sh in shingles(n):
            m.update(sh.encode())
        if lsh.query(m):
            n_near += 1
            continue
        key = str(len(kept))
        lsh.insert(key, m)
        extra = {k: v for k, v in raw.items() if k not in ("review", "text")}
        kept.append({"id": len(kept), "source": src, "text": text, "norm": n, "meta": extra})
    with open(OUT / "pool.jsonl", "w", encoding="utf-8") as f:
        for r in kept:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"in={n_in} exact_dup={n_exact} near_dup={n_near} kept={len(kept)}", file=sys.stderr)


if __name__ == "__main__":
    main()
