"""A second, blind annotation of the real rows, and its adjudication (stage 8, 2026-12-07).

The real rows were labelled by one annotator (annotator a). Annotator b labelled, blind, every
real held-out row and every real training row that annotator a had given a weak class
(account_privacy, policy_contract or suggestion); a third annotator settled each row where the
two differ in the primary label or in the label set, without knowing which annotation was which.
A second round did the same for the other real training rows.

    python tools/second_annotation.py pool       # second/pool.jsonl, second/annotator_a.jsonl, blind chunks
    python tools/second_annotation.py extend     # round 2: the other real training rows, appended
    python tools/second_annotation.py agreement  # second/agreement.json, second/disagreements.jsonl
    python tools/second_annotation.py final      # second/final_labels.jsonl (agreed labels + verdicts)

``tools/build_dataset.py`` puts the final labels into ``real_train.jsonl`` / ``real_heldout.jsonl``.
``pool`` reads the labels as they were before this stage (it selects training rows by them), so it
is kept for the record: rerunning it after ``final`` picks other training rows.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

D = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(D.parents[1]))  # the repository, for models.*
from models.evaluation import cohen_kappa  # noqa: E402
from models.taxonomy import ISSUE_TYPES  # noqa: E402

SECOND = D / "second"
WEAK = frozenset({"account_privacy", "policy_contract", "suggestion"})
CHUNKS = 7
SEED = 2026
ROUND2_CHUNKS = 8


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def texts_by_source() -> dict[str, str]:
    return {r["source"]: r["text"] for name in ("real_train", "real_heldout") for r in read_jsonl(D / f"{name}.jsonl")}


def build_pool(chunk_dir: Path) -> None:
    held = [("heldout", r) for r in read_jsonl(D / "real_heldout.jsonl")]
    train = [("train", r) for r in read_jsonl(D / "real_train.jsonl") if WEAK & set(r["labels"])]
    rows = held + train
    random.Random(SEED).shuffle(rows)  # annotators see held-out and training rows mixed
    write_round(rows, 1, [], chunk_dir, CHUNKS)
    print(f"{len(rows)} rows ({len(held)} held-out, {len(train)} training) in {CHUNKS} chunks")


def extend_pool(chunk_dir: Path) -> None:
    """Round 2: every real training row that round 1 left out, in chunks numbered after round 1's."""
    pool = read_jsonl(SECOND / "pool.jsonl")
    done = {p["source"] for p in pool}
    rows = [("train", r) for r in read_jsonl(D / "real_train.jsonl") if r["source"] not in done]
    random.Random(SEED + 1).shuffle(rows)
    write_round(rows, 2, pool, chunk_dir, ROUND2_CHUNKS, first_chunk=CHUNKS)
    print(f"{len(rows)} training rows in {ROUND2_CHUNKS} chunks")


def write_round(rows: list[tuple[str, dict]], round_no: int, pool: list[dict], chunk_dir: Path, chunks: int,
                first_chunk: int = 0) -> None:
    start = len(pool)
    new = [{"id": f"s{start + k:04d}", "source": r["source"], "split": split, "round": round_no}
           for k, (split, r) in enumerate(rows)]
    write_jsonl(SECOND / "pool.jsonl", pool + new)
    old_a = read_jsonl(SECOND / "annotator_a.jsonl") if pool else []
    write_jsonl(SECOND / "annotator_a.jsonl", old_a + [{"id": p["id"], "labels": r["labels"]} for p, (_, r) in zip(new, rows)])
    size = -(-len(new) // chunks)
    for c in range(chunks):  # what each annotator b instance saw: ids and texts, nothing else
        part = slice(c * size, (c + 1) * size)
        write_jsonl(chunk_dir / f"chunk{first_chunk + c}.jsonl",
                    [{"id": p["id"], "text": r["text"]} for p, (_, r) in zip(new[part], rows[part])])


def agreement_report(ids: list[str], a: dict, b: dict) -> dict:
    per_class = {}
    for lab in ISSUE_TYPES:
        xa, xb = [lab in a[i] for i in ids], [lab in b[i] for i in ids]
        per_class[lab] = {"kappa": cohen_kappa(xa, xb), "annotator_a": sum(xa), "annotator_b": sum(xb),
                          "both": sum(x and y for x, y in zip(xa, xb))}
    return {"rows": len(ids),
            "primary": {"kappa": cohen_kappa([a[i][0] for i in ids], [b[i][0] for i in ids]),
                        "agreement": round(sum(a[i][0] == b[i][0] for i in ids) / len(ids), 3)},
            "label_set_exact_agreement": round(sum(set(a[i]) == set(b[i]) for i in ids) / len(ids), 3),
            "per_class": per_class}


def differ(x: list[str], y: list[str]) -> bool:
    return x[0] != y[0] or set(x) != set(y)


def annotations(name: str) -> dict[str, list[str]]:
    return {r["id"]: r["labels"] for r in read_jsonl(SECOND / f"{name}.jsonl")}


GROUPS = {"heldout": lambda p: p["split"] == "heldout",
          "train_weak_classes": lambda p: p["split"] == "train" and p["round"] == 1,
          "train_other": lambda p: p["round"] == 2}


def agreement_reports(pool: list[dict], a: dict, b: dict) -> dict:
    """Cohen's kappa per group of rows (held-out, round-1 training, round-2 training)."""
    missing = [p["id"] for p in pool if p["id"] not in b]
    if missing:
        raise SystemExit(f"annotator b has no labels for {len(missing)} rows, e.g. {missing[:5]}")
    return {name: agreement_report([p["id"] for p in pool if member(p)], a, b)
            for name, member in GROUPS.items() if any(member(p) for p in pool)}


def disagreements(pool: list[dict], a: dict, b: dict, texts: dict[str, str]) -> list[dict]:
    """The rows to adjudicate; the adjudicator sees the two annotations as x and y, in random order."""
    rng = random.Random(SEED)
    out = []
    for p in pool:
        i = p["id"]
        if differ(a[i], b[i]):
            x, y = (a[i], b[i]) if rng.random() < 0.5 else (b[i], a[i])
            out.append({"id": i, "text": texts[p["source"]], "x": x, "y": y})
    return out


def final_labels(pool: list[dict], a: dict, b: dict, verdicts: dict) -> list[dict]:
    """Agreed rows keep annotator a's labels (a's order); the others take the verdict."""
    missing = [p["id"] for p in pool if differ(a[p["id"]], b[p["id"]]) and p["id"] not in verdicts]
    if missing:
        raise SystemExit(f"no verdict for {len(missing)} disagreements, e.g. {missing[:5]}")
    return [{"source": p["source"], "labels": verdicts[p["id"]] if differ(a[p["id"]], b[p["id"]]) else a[p["id"]]}
            for p in pool]


def agreement() -> None:
    pool, a, b = read_jsonl(SECOND / "pool.jsonl"), annotations("annotator_a"), annotations("annotator_b")
    report = agreement_reports(pool, a, b)
    (SECOND / "agreement.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    out = disagreements(pool, a, b, texts_by_source())
    write_jsonl(SECOND / "disagreements.jsonl", out)
    for split, r in report.items():
        print(split, json.dumps({k: r[k] for k in ("rows", "primary", "label_set_exact_agreement")}))
    print(f"{len(out)} disagreements")


def final() -> None:
    pool, a = read_jsonl(SECOND / "pool.jsonl"), annotations("annotator_a")
    out = final_labels(pool, a, annotations("annotator_b"), annotations("verdicts"))
    write_jsonl(SECOND / "final_labels.jsonl", out)
    changed = sum(a[p["id"]] != r["labels"] for p, r in zip(pool, out))
    print(f"{len(out)} final labels, {changed} differ from annotator a")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "pool":
        build_pool(Path(sys.argv[2]) if len(sys.argv) > 2 else SECOND / "chunks")
    elif command == "extend":
        extend_pool(Path(sys.argv[2]) if len(sys.argv) > 2 else SECOND / "chunks")
    elif command == "agreement":
        agreement()
    elif command == "final":
        final()
    else:
        raise SystemExit(__doc__)
