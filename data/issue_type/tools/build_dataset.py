"""Assemble the committed JSONL files from the hand labels.

Inputs (work/ is git-ignored except the label file):
  work/candidates.jsonl   pre-selected candidates (tools/preselect.py)
  work/labels.txt         hand labels, tokens "cid:CODES", first code = primary
  written/*.py            self-written examples (WRITTEN list of (text, [labels]))
Outputs: real_train.jsonl, real_heldout.jsonl, written_train.jsonl, written_heldout.jsonl

Split: near-duplicate groups (MinHash over char 3-grams, Jaccard >= 0.5, much
looser than the 0.7 used for dedup) are kept on one side; groups are assigned
per primary label, ~70/30, deterministic (seeded shuffle).
"""
import importlib.util
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

from datasketch import MinHash, MinHashLSH

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prep_pool import norm, shingles  # noqa: E402

D = Path(__file__).resolve().parent.parent
W = D / "work"
CODE = {"L": "logistics", "Q": "product_quality", "P": "price_billing", "S": "service_attitude",
        "R": "refund_aftersales", "T": "technical", "A": "account_privacy", "C": "policy_contract",
        "G": "suggestion", "H": "praise", "O": "other"}
TAXONOMY = list(CODE.values())


def read_labels():
    lab = {}
    for line in open(W / "labels.txt", encoding="utf-8"):
        for tok in line.split():
            cid, codes = tok.split(":")
            lab[int(cid)] = codes  # later entries override earlier ones (corrections)
    return lab


def groups(rows, thr=0.5):
    lsh = MinHashLSH(threshold=thr, num_perm=128)
    parent = list(range(len(rows)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, r in enumerate(rows):
        m = MinHash(num_perm=128)
        for sh in shingles(norm(r["text"])):
            m.update(sh.encode())
        for j in lsh.query(m):
            parent[find(i)] = find(int(j))
        lsh.insert(str(i), m)
    return [find(i) for i in range(len(rows))]


def split(rows, frac=0.3, seed=7):
    g = groups(rows)
    by_label = defaultdict(dict)
    for i, r in enumerate(rows):
        by_label[rows[g[i]]["label"]].setdefault(g[i], []).append(i)
    rnd = random.Random(seed)
    train, held = [], []
    for lbl in sorted(by_label):
        gs = sorted(by_label[lbl].values(), key=lambda ix: rows[ix[0]]["source"])
        rnd.shuffle(gs)
        n = sum(len(x) for x in gs)
        taken = 0
        for ix in gs:
            if taken < round(n * frac):
                held.extend(ix)
                taken += len(ix)
            else:
                train.extend(ix)
    return [rows[i] for i in sorted(train)], [rows[i] for i in sorted(held)]


def real_rows():
    lab = read_labels()
    rows = []
    for line in open(W / "candidates.jsonl", encoding="utf-8"):
        c = json.loads(line)
        codes = lab.get(c["cid"])
        if not codes or codes == "X":
            continue
        labels = list(dict.fromkeys(CODE[x] for x in codes))
        rows.append({"text": c["text"], "label": labels[0], "labels": labels,
                     "source": c["source"], "origin": "real"})
    rows.sort(key=lambda r: (r["source"].split(":")[0], int(r["source"].split(":")[1])))
    return rows


def written_rows():
    rows = []
    for p in sorted((D / "written").glob("*.py")):
        spec = importlib.util.spec_from_file_location(p.stem, p)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for text, labels in mod.WRITTEN:
            text = text.strip()
            assert labels and all(x in TAXONOMY for x in labels), (p.name, text, labels)
            rows.append({"text": text, "label": labels[0], "labels": list(dict.fromkeys(labels)),
                         "source": "written", "origin": "written"})
    seen, out = set(), []
    for r in rows:
        k = norm(r["text"])
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def dump(name, rows):
    with open(D / name, "w", encoding="utf-8") as f:
        for r in rows:
            assert r["label"] == r["labels"][0] and all(x in TAXONOMY for x in r["labels"])
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)}", dict(sorted(Counter(r["label"] for r in rows).items())))


def main():
    real = real_rows()
    tr, he = split(real)
    dump("real_train.jsonl", tr)
    dump("real_heldout.jsonl", he)
    wr = written_rows()
    if wr:
        # written rows are also split so that near-duplicates stay on one side
        wtr, whe = split(wr, frac=0.15, seed=11)
        dump("written_train.jsonl", wtr)
        dump("written_heldout.jsonl", whe)


if __name__ == "__main__":
    main()
