"""Normalizer benchmark: throughput with and without the store-backed dedup index, and dedup quality.

Texts: the real feedback rows of data/issue_type (distinct after the dataset's own dedup).
Quality: each text is sent once; a share of them again with small edits (a character
dropped or added, punctuation changed, Traditional script, an emoji) from another
customer. Recall = edited copies linked to their original; false links = originals
linked to anything (they are distinct messages).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from consumers.normalizer import NormalizerStage
from consumers.normalizer.dedup import DedupIndex, dedup_key_text
from consumers.stage import InMessage, process_batch
from consumers.store import make_engine, migrate
from consumers.store.dedup_index import SqlDedupIndex
from topics.settings import ChannelSettings

REAL_ROWS = ("data/issue_type/real_train.jsonl", "data/issue_type/real_heldout.jsonl")
_T0 = datetime(2026, 11, 16, tzinfo=timezone.utc)


def load_texts(root: Path) -> list[str]:
    texts = []
    for name in REAL_ROWS:
        path = root / name
        if path.is_file():
            texts.extend(json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not texts:
        raise FileNotFoundError(f"no real feedback rows under {root} ({', '.join(REAL_ROWS)})")
    return list(dict.fromkeys(texts))


def _edit(text: str, rng: random.Random) -> str:
    from opencc import OpenCC

    kind = rng.choice(["drop", "add", "punct", "traditional", "emoji"])
    if kind == "drop" and len(text) > 12:
        i = rng.randrange(len(text))
        return text[:i] + text[i + 1 :]
    if kind == "add":
        i = rng.randrange(len(text) + 1)
        return text[:i] + rng.choice("的了啊呢吧") + text[i:]
    if kind == "punct":
        return text.replace("，", " ").replace("。", "!!") + "！"
    if kind == "traditional":
        return OpenCC("s2t").convert(text)
    return text + "😡"


def workload(texts: list[str], dup_share: float, seed: int = 7) -> tuple[list[dict], dict[str, str]]:
    """Events (originals, then edited copies interleaved) and {copy id: original id}."""
    rng = random.Random(seed)
    events, copies = [], {}
    for i, text in enumerate(texts):
        events.append(_event(f"o{i}", f"c{i}", text, i))
        if rng.random() < dup_share:
            copy_id = f"d{i}"
            events.append(_event(copy_id, f"x{i}", _edit(text, rng), i))
            copies[copy_id] = f"o{i}"
    return events, copies


def _event(event_id: str, customer: str, text: str, minute: int) -> dict:
    return {
        "event_id": event_id,
        "channel": "app",
        "source": "bench",
        "received_at": (_T0 + timedelta(minutes=minute)).isoformat(),
        "customer": {"id": customer},
        "payload": {"text": text},
    }


def _batches(events: list[dict], size: int) -> Iterator[list[InMessage]]:
    encoded = [json.dumps(e, ensure_ascii=False).encode() for e in events]
    for start in range(0, len(encoded), size):
        yield [InMessage("feedback.raw", 0, start + k, None, value) for k, value in enumerate(encoded[start : start + size])]


def run_once(events: list[dict], settings: ChannelSettings, index: DedupIndex | None, batch_size: int) -> tuple[float, dict[str, str | None]]:
    stage = NormalizerStage(settings=settings, dedup_index=index)
    links: dict[str, str | None] = {}
    started = time.perf_counter()
    for batch in _batches(events, batch_size):
        result = process_batch(stage, batch)
        links.update((o.event.event_id, o.event.duplicate_of) for o in result.outputs)
    return time.perf_counter() - started, links


def benchmark(root: Path, store_urls: dict[str, str], dup_share: float = 0.3, batch_size: int = 64) -> dict:
    settings = ChannelSettings()
    texts = load_texts(root)
    events, copies = workload(texts, dup_share)
    originals = {e["event_id"]: e["payload"]["text"] for e in events}
    report: dict = {
        "data": {"texts": len(texts), "events": len(events), "edited_copies": len(copies), "source": list(REAL_ROWS)},
        "settings": settings.dedup.model_dump(),
        "batch_size": batch_size,
        "runs": {},
    }
    elapsed, _ = run_once(events, settings, None, batch_size)
    report["runs"]["no_dedup"] = {"seconds": round(elapsed, 3), "events_per_s": round(len(events) / elapsed, 1)}
    for name, url in store_urls.items():
        engine = make_engine(url)
        migrate(engine)
        try:
            elapsed, links = run_once(events, settings, SqlDedupIndex(engine, settings.dedup), batch_size)
        finally:
            engine.dispose()
        linked_copies = sum(1 for copy, original in copies.items() if links.get(copy) == original)
        # Below near_min_chars only exact (same customer) duplicates are looked for; copies come from other customers.
        comparable = {c: o for c, o in copies.items() if len(dedup_key_text(originals[o])) >= settings.dedup.near_min_chars}
        linked_comparable = sum(1 for copy, original in comparable.items() if links.get(copy) == original)
        false_links = sum(1 for event_id, link in links.items() if event_id.startswith("o") and link is not None)
        report["runs"][f"dedup_{name}"] = {
            "seconds": round(elapsed, 3),
            "events_per_s": round(len(events) / elapsed, 1),
            "copy_recall": round(linked_copies / max(1, len(copies)), 4),
            "copy_recall_at_near_min_chars": round(linked_comparable / max(1, len(comparable)), 4),
            "copies_at_near_min_chars": len(comparable),
            "originals_linked": false_links,
            "originals_linked_share": round(false_links / len(texts), 4),
        }
    return report
