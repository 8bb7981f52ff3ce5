"""Build ``weak_extra_train.jsonl``: training-only rows for the weak classes (stage 6, 2026-12-07).

Inputs (committed):
  extra/mined_labels.txt    real texts of the shared files, ``<file>:<0-based row>\\t<codes>`` (codes as in
                            work/labels.txt, primary first); the text is read from the shared file
  extra/written_extra.jsonl self-written rows, ``{"text", "labels", "primary"}``

Every row goes to training; none is split off. A row is dropped (and reported) when its normalised text
(``models.data.dedup_key``) is already in any file of this folder or of ``data/adjudicated`` (pool and
eval files), or when it is near a held-out text: character 3-gram Jaccard >= 0.4 on normalised text, or a
difflib ratio > 0.55, against every ``*_heldout.jsonl`` here and ``data/adjudicated/eval/*.jsonl``. Held-out
texts are only compared by these scores, never read.

    python tools/build_extra.py [SHARED_DATA_DIR]
"""
import csv
import difflib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
from models.data import dedup_key  # noqa: E402
from models.taxonomy import ISSUE_TYPES  # noqa: E402

D = Path(__file__).resolve().parent.parent
OUT = D / "weak_extra_train.jsonl"
CODES = dict(L="logistics", Q="product_quality", P="price_billing", S="service_attitude", R="refund_aftersales",
             T="technical", A="account_privacy", C="policy_contract", G="suggestion", H="praise", O="other")


def shared_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    from topics.settings import Settings

    return Settings().shared_data


def shared_text(folder: Path, source: str) -> str:
    name, idx = source.rsplit(":", 1)
    idx = int(idx)
    if name.endswith(".jsonl"):
        with open(folder / name, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i == idx:
                    return json.loads(line)["text"]
    else:
        with open(folder / name, encoding="utf-8-sig", newline="") as f:
            for i, r in enumerate(csv.DictReader(f)):
                if i == idx:
                    return (r.get("review") or "").lstrip("\ufeff")
    raise KeyError(source)


def texts(path: Path) -> list[str]:
    return [json.loads(l)["text"] for l in open(path, encoding="utf-8") if l.strip()]


def shingles(k: str) -> set[str]:
    return {k[i:i + 3] for i in range(max(1, len(k) - 2))}


def difflib_near(a: str, b: str) -> bool:
    m = difflib.SequenceMatcher(None, a, b)
    return m.real_quick_ratio() > 0.55 and m.quick_ratio() > 0.55 and m.ratio() > 0.55


def known_texts(out: Path) -> tuple[set[str], list[str], list[set[str]]]:
    """Normalised texts of every file here (but ``out``) and of data/adjudicated; the held-out ones and their shingles."""
    existing = [p for p in sorted(D.glob("*.jsonl")) if p != out]
    adjudicated = REPO / "data" / "adjudicated"
    held_files = [p for p in existing if "heldout" in p.name] + sorted((adjudicated / "eval").glob("*.jsonl"))
    used = {dedup_key(t) for p in existing + held_files + [adjudicated / "pool.jsonl"] for t in texts(p)}
    held = list(dict.fromkeys(dedup_key(t) for p in held_files for t in texts(p)))
    return used, held, [shingles(k) for k in held]


def near_held(k: str, held: list[str], held_sh: list[set[str]]) -> tuple[bool, float]:
    """Whether normalised text ``k`` is near a held-out text, and its highest 3-gram Jaccard to one."""
    s = shingles(k)
    jac = max((len(s & h) / len(s | h) for h in held_sh if s & h), default=0.0)
    return jac >= 0.4 or any(difflib_near(k, h) for h in held), jac


def main() -> None:
    folder = shared_dir()
    rows = []
    for line in open(D / "extra" / "mined_labels.txt", encoding="utf-8"):
        if not line.strip() or line.startswith("#"):
            continue
        source, codes = line.rstrip("\n").split("\t")
        labels = [CODES[c] for c in codes]
        rows.append({"text": shared_text(folder, source).strip(), "label": labels[0], "labels": labels,
                     "source": source, "origin": "real_extra"})
    for line in open(D / "extra" / "written_extra.jsonl", encoding="utf-8"):
        r = json.loads(line)
        rows.append({"text": r["text"].strip(), "label": r["labels"][0], "labels": r["labels"], "source": "written",
                     "origin": "written_extra"})
    for r in rows:
        assert r["labels"] and all(l in ISSUE_TYPES for l in r["labels"]) and len(set(r["labels"])) == len(r["labels"])

    used, held, held_sh = known_texts(OUT)
    kept, seen, dropped = [], set(), []
    for r in rows:
        k = dedup_key(r["text"])
        if k in used or k in seen:
            dropped.append((r["text"][:40], "duplicate"))
            continue
        near, jac = near_held(k, held, held_sh)
        if near:
            dropped.append((r["text"][:40], f"near a held-out text (jaccard {jac:.2f})"))
            continue
        seen.add(k)
        kept.append(r)
    with open(OUT, "w", encoding="utf-8") as f:
        for r in kept:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(kept)} rows -> {OUT.name}; dropped {len(dropped)}")
    for t, why in dropped:
        print(f"  dropped: {why}: {t}")


if __name__ == "__main__":
    main()
