"""The adjudicated set: agreed rows as both annotators labelled them, the others as adjudicated.

    .venv/bin/python data/adjudicated/tools/finalize.py

Writes, in data/issue_type/ (the training code's folder, same row format plus ``sentiment`` and
``aspects``), ``adjudicated_train.jsonl`` and ``adjudicated_heldout.jsonl``: a fixed half of the
rows each, split by a hash of the row id, so the held-out half never depends on what the model
does. The held-out half is for figures only: no training and no threshold choice reads it.
Evaluation files for ``feedback-miner model eval`` go to data/adjudicated/eval/.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
ISSUE_DIR = HERE.parent / "issue_type"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def held_out(row_id: str) -> bool:
    return int(hashlib.sha256(f"adjudicated:{row_id}".encode()).hexdigest(), 16) % 2 == 1


def main() -> None:
    pool = {r["id"]: r["text"] for r in _jsonl(HERE / "pool.jsonl")}
    sources = {r["id"]: r for r in _jsonl(HERE / "pool_sources.jsonl")}
    a = {r["id"]: r for r in _jsonl(HERE / "annotations" / "annotator_a.jsonl")}
    verdicts = {r["id"]: r for r in _jsonl(HERE / "verdicts.jsonl")}
    disputed = {r["id"] for r in _jsonl(HERE / "disagreements.jsonl")}
    if disputed != set(verdicts):
        raise SystemExit(f"verdicts do not cover the disagreements: {sorted(disputed ^ set(verdicts))[:10]}")
    splits: dict[str, list[dict]] = {"train": [], "heldout": []}
    for row_id, text in pool.items():
        final = verdicts.get(row_id) or a[row_id]
        src = sources[row_id]
        splits["heldout" if held_out(row_id) else "train"].append({
            "text": text, "label": final["labels"][0], "labels": final["labels"], "sentiment": final["sentiment"],
            "aspects": final["aspects"], "source": src["source"], "origin": src["origin"],
            "adjudicated": row_id in verdicts})
    for name, rows in splits.items():
        (ISSUE_DIR / f"adjudicated_{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    held = splits["heldout"]
    out = HERE / "eval"
    out.mkdir(exist_ok=True)

    def write(name: str, rows: list[dict]) -> None:
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    write("heldout_issue_type.jsonl", [{"text": r["text"], "label": r["label"], "labels": r["labels"]} for r in held])
    write("heldout_sentiment_social.jsonl", [{"text": r["text"], "label": r["sentiment"]} for r in held
                                            if r["source"].startswith("weibo")])
    write("heldout_sentiment_all.jsonl", [{"text": r["text"], "label": r["sentiment"]} for r in held])
    write("heldout_aspects.jsonl", [{"text": r["text"], "label": r["label"], "labels": r["labels"],
                                     "aspects": r["aspects"]} for r in held if len(r["labels"]) > 1])
    print({k: len(v) for k, v in splits.items()})


if __name__ == "__main__":
    main()
