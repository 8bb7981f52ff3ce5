"""Agreement between the two blind annotators, and the rows they disagree on.

    .venv/bin/python data/adjudicated/tools/agreement.py            # writes agreement.json, disagreements.jsonl

Cohen's kappa per issue type (does the text raise it: yes/no), for the primary label
(11-way), the overall sentiment (3-way) and the aspect sentiments of the labels both chose.
A row is a disagreement when the primary label, the label set, the sentiment or a shared
aspect's sentiment differ; those go to adjudication (tools/finalize.py reads the verdicts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE.parents[1]))
from models.evaluation import cohen_kappa  # noqa: E402
from models.taxonomy import ISSUE_TYPES, SENTIMENTS  # noqa: E402

ANNOTATORS = ("annotator_a", "annotator_b")


def load(name: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in (HERE / "annotations" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return {r["id"]: r for r in rows}


def main() -> None:
    a, b = (load(n) for n in ANNOTATORS)
    pool = {json.loads(line)["id"]: json.loads(line)["text"]
            for line in (HERE / "pool.jsonl").read_text(encoding="utf-8").splitlines()}
    ids = [i for i in pool if i in a and i in b]
    per_class = {}
    for lab in ISSUE_TYPES:
        xa = [lab in a[i]["labels"] for i in ids]
        xb = [lab in b[i]["labels"] for i in ids]
        per_class[lab] = {"kappa": cohen_kappa(xa, xb), "annotator_a": sum(xa), "annotator_b": sum(xb),
                          "both": sum(x and y for x, y in zip(xa, xb))}
    aspect_pairs = [(a[i]["aspects"][lab], b[i]["aspects"][lab]) for i in ids
                    for lab in set(a[i]["labels"]) & set(b[i]["labels"])]
    report = {
        "rows": len(ids),
        "primary": {"kappa": cohen_kappa([a[i]["labels"][0] for i in ids], [b[i]["labels"][0] for i in ids]),
                    "agreement": round(sum(a[i]["labels"][0] == b[i]["labels"][0] for i in ids) / len(ids), 3)},
        "label_set_exact_agreement": round(sum(set(a[i]["labels"]) == set(b[i]["labels"]) for i in ids) / len(ids), 3),
        "per_class": per_class,
        "sentiment": {"kappa": cohen_kappa([a[i]["sentiment"] for i in ids], [b[i]["sentiment"] for i in ids]),
                      "agreement": round(sum(a[i]["sentiment"] == b[i]["sentiment"] for i in ids) / len(ids), 3),
                      "per_class": {s: cohen_kappa([a[i]["sentiment"] == s for i in ids],
                                                   [b[i]["sentiment"] == s for i in ids]) for s in SENTIMENTS}},
        "aspect_sentiment": {"pairs": len(aspect_pairs),
                             "kappa": cohen_kappa([x for x, _ in aspect_pairs], [y for _, y in aspect_pairs])},
    }
    (HERE / "agreement.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    out = []
    for i in ids:
        ra, rb = a[i], b[i]
        shared = set(ra["labels"]) & set(rb["labels"])
        if (ra["labels"][0] != rb["labels"][0] or set(ra["labels"]) != set(rb["labels"])
                or ra["sentiment"] != rb["sentiment"] or any(ra["aspects"][s] != rb["aspects"][s] for s in shared)):
            out.append({"id": i, "text": pool[i], "annotator_a": {k: ra[k] for k in ("labels", "sentiment", "aspects")},
                        "annotator_b": {k: rb[k] for k in ("labels", "sentiment", "aspects")}})
    (HERE / "disagreements.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out),
                                              encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("rows", "primary", "label_set_exact_agreement", "sentiment",
                                             "aspect_sentiment")}, ensure_ascii=False))
    print(f"{len(out)} disagreements")


if __name__ == "__main__":
    main()
