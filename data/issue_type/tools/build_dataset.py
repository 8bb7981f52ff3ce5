"""Assemble the committed JSONL files from the hand labels.

Inputs (work/ is git-ignored except the label file):
  work/candidates.jsonl   pre-selected candidates (tools/preselect.py)
  work/labels.txt         hand labels, tokens "cid:CODES", first code = primary; lines starting with # are comments
  written/*.jsonl         self-written examples, one {"text", "labels", "primary"} per line
  second/final_labels.jsonl  the adjudicated labels of the doubly annotated real rows (tools/second_annotation.py)
Outputs: real_train.jsonl, real_heldout.jsonl, written_train.jsonl, written_heldout.jsonl

Split: near-duplicate groups (exact pairwise Jaccard over char 3-grams >= 0.5, much
looser than the 0.7 used for dedup) are kept on one side; each group is assigned
within its primary label by a seeded hash rank (~70/30 per label, deterministic).
"""
import hashlib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for models.taxonomy
from prep_pool import norm, shingles  # noqa: E402

from models.taxonomy import ISSUE_TYPES  # noqa: E402

D = Path(__file__).resolve().parent.parent
W = D / "work"
# One letter per label in work/labels.txt, in the taxonomy's (fixed) order.
CODE = dict(zip("LQPSRTACGHO", ISSUE_TYPES, strict=True))
TAXONOMY = list(ISSUE_TYPES)


def read_labels():
    lab = {}
    for line in open(W / "labels.txt", encoding="utf-8"):
        if line.lstrip().startswith("#"):
            continue  # comment lines (e.g. the stage-5 header)
        for tok in line.split():
            cid, codes = tok.split(":")
            lab[int(cid)] = codes  # later entries override earlier ones (corrections)
    return lab


def groups(rows, thr=0.5):
    """Union-find over exact pairwise Jaccard (char 3-grams of the normalised text) >= thr."""
    sh = [shingles(norm(r["text"])) for r in rows]
    parent = list(range(len(rows)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(rows)):
        a = sh[i]
        for j in range(i):
            b = sh[j]
            if len(a & b) >= thr * len(a | b):
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(rows))]


def pin_key(row):
    """A real row is pinned by its source, a written one by its normalised text."""
    return row["source"] if row["origin"] == "real" else "written:" + norm(row["text"])


def pinned_train():
    """Rows an earlier shipped model was trained on (the first release's real_train sources, and
    the written_train texts the shipped encoder was tuned on): a re-split must never move them
    into held-out, or held-out figures would include rows the model has seen."""
    p = W / "pinned_train.txt"
    return frozenset(p.read_text(encoding="utf-8").split()) if p.is_file() else frozenset()


def split(rows, frac=0.3, seed=7, pinned=frozenset()):
    """Stratified, deterministic split. Near-duplicate groups stay on one side; within each
    primary label (of the group's first row) groups are ranked by a seeded hash of their
    smallest member key and the lowest-ranked ones fill ~frac of that label's rows
    (groups holding a ``pinned`` source always go to train)."""
    g = groups(rows)
    members = defaultdict(list)
    for i in range(len(rows)):
        members[g[i]].append(i)
    by_label = defaultdict(list)
    for ix in members.values():
        key = min(rows[i]["source"] + "|" + rows[i]["text"] for i in ix)
        h = hashlib.sha1(f"{seed}:{key}".encode("utf-8")).hexdigest()
        by_label[rows[ix[0]]["label"]].append((h, ix))
    train, held = [], []
    for lbl in sorted(by_label):
        gs = sorted(by_label[lbl])
        n = sum(len(ix) for _, ix in gs)
        target, taken = max(1, round(n * frac)), 0
        for _, ix in gs:
            if taken < target and not any(pin_key(rows[i]) in pinned for i in ix):
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
    dup = [s for s, n in Counter(r["source"] for r in rows).items() if n > 1]
    assert not dup, f"source rows labelled under two cids: {dup[:5]}"
    return rows


def second_annotation():
    """{source: labels} adjudicated in stage 8 (empty before it)."""
    path = D / "second" / "final_labels.jsonl"
    if not path.is_file():
        return {}
    return {r["source"]: r["labels"] for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def with_second_annotation(rows, final):
    """The adjudicated labels of stage 8, put in after the split: a row never changes side."""
    return [{**r, "label": final[r["source"]][0], "labels": final[r["source"]]} if r["source"] in final else r
            for r in rows]


def read_written(folder=D / "written"):
    """The self-written examples as ``(file, text, labels)``: ``written/*.jsonl``, one
    ``{"text", "labels", "primary"}`` per line (``primary`` is ``labels[0]``)."""
    out = []
    for p in sorted(Path(folder).glob("*.jsonl")):
        for n, line in enumerate(open(p, encoding="utf-8"), 1):
            if line.strip():
                r = json.loads(line)
                labels = r["labels"]
                assert labels and r["primary"] == labels[0], f"{p.name}:{n}: primary must be labels[0]"
                out.append((p.name, r["text"], labels))
    return out


def written_rows():
    rows = []
    for name, text, labels in read_written():
        text = text.strip()
        assert labels and all(x in TAXONOMY for x in labels), (name, text, labels)
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
    tr, he = split(real, pinned=pinned_train())
    final = second_annotation()
    dump("real_train.jsonl", with_second_annotation(tr, final))
    dump("real_heldout.jsonl", with_second_annotation(he, final))
    wr = written_rows()
    if wr:
        # written rows are also split so that near-duplicates stay on one side
        wtr, whe = split(wr, frac=0.15, seed=11, pinned=pinned_train())
        dump("written_train.jsonl", wtr)
        dump("written_heldout.jsonl", whe)


if __name__ == "__main__":
    main()
