"""Draw the pool that two annotators label blind (data/adjudicated/DATA_CARD.md).

Real rows from every file of ../shared/data that the issue-type set has not used yet, plus
self-written customer-service style rows (data/sentiment_written, never issue-type labelled),
deduplicated on normalised text. Seeded, so the pool is reproducible:

    .venv/bin/python data/adjudicated/tools/build_pool.py ../shared/data
"""

from __future__ import annotations

import csv
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
ISSUE_DIR = HERE.parent / "issue_type"
WRITTEN_DIR = HERE.parent / "sentiment_written"
SEED = 20261206
# Real sources and how many rows each gives: social posts are the weakest part of today's model.
REAL_QUOTA = {"weibo_emotion_virus.jsonl": 150, "waimai_10k.csv": 90, "online_shopping_9_cats.csv": 120,
              "chnsenticorp_train.csv": 60}
WRITTEN_QUOTA = 180
MIN_CHARS, MAX_CHARS = 4, 300


def _norm(text: str) -> str:
    return re.sub(r"\W+", "", text).lower()


def _real_rows(shared: Path, name: str) -> list[tuple[str, str]]:
    path = shared / name
    if name.endswith(".jsonl"):
        lines = path.read_text(encoding="utf-8").splitlines()
        return [(f"{name}:{i}", json.loads(line)["text"]) for i, line in enumerate(lines) if line.strip()]
    with path.open(encoding="utf-8") as f:
        return [(f"{name}:{i}", row["review"].lstrip("\ufeff")) for i, row in enumerate(csv.DictReader(f))]


def build(shared: Path) -> list[dict]:
    rng = random.Random(SEED)
    used_sources, seen = set(), set()
    for split in ("real_train", "real_heldout", "written_train", "written_heldout"):
        for line in (ISSUE_DIR / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            used_sources.add(row["source"])
            seen.add(_norm(row["text"]))
    pool: list[dict] = []

    def take(candidates: list[tuple[str, str]], quota: int, origin: str) -> None:
        rng.shuffle(candidates)
        taken = 0
        for source, text in candidates:
            key = _norm(text)
            if taken == quota:
                break
            if source in used_sources or key in seen or not MIN_CHARS <= len(text.strip()) <= MAX_CHARS:
                continue
            seen.add(key)
            pool.append({"source": source, "origin": origin, "text": text.strip()})
            taken += 1

    for name, quota in REAL_QUOTA.items():
        take(_real_rows(shared, name), quota, "real")
    written = []
    for path in sorted(WRITTEN_DIR.glob("*.jsonl")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            written.append((f"sentiment_written/{path.name}:{i}", json.loads(line)["text"]))
    take(written, WRITTEN_QUOTA, "written")
    rng.shuffle(pool)  # annotators see sources mixed, in one fixed order
    for i, row in enumerate(pool):
        row["id"] = f"p{i:04d}"
    return pool


if __name__ == "__main__":
    rows = build(Path(sys.argv[1]))
    out = HERE / "pool.jsonl"
    out.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    (HERE / "pool_sources.jsonl").write_text(
        "".join(json.dumps({"id": r["id"], "source": r["source"], "origin": r["origin"]}) + "\n" for r in rows),
        encoding="utf-8")
    print(f"{len(rows)} rows -> {out}")
