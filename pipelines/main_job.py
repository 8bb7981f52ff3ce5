"""The main job: raw feedback in, every built stage run until the stream is drained, results out."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from consumers.kafka_io import make_producer, read_topic
from consumers.runtime import StreamRuntime
from pipelines.kafka_session import kafka_session
from pipelines.publishing import PublishReport, Rejected, parse_lines, publish_events
from pipelines.stages import STAGES, build_stage
from topics.settings import Settings
from topics.specs import RAW, topic_specs

log = logging.getLogger(__name__)


def sample_path(name: str) -> Path:
    return Path(str(resources.files("pipelines") / "samples" / name))


@dataclass
class MainJobReport:
    published: PublishReport
    malformed_sent: int
    stage_stats: dict[str, dict[str, int]]
    # Every record on every topic at the end, decoded as JSON, per logical topic.
    topics: dict[str, list[dict]] = field(default_factory=dict)
    drained: bool = True
    # Weekly digests built from what the enricher stored (pipelines.digest.build.DigestOutcome).
    digests: list = field(default_factory=list)
    # The alert events this run published (acknowledged by the broker), as JSON; None without an alerter.
    # Not the topic's content: a kept broker holds earlier runs' alerts too.
    alerts: list[dict] | None = None
    # Enriched events the alerter had already processed before this run (not counted again).
    alerts_already_processed: int = 0


def send_malformed(settings: Settings, path: Path) -> int:
    """Send deliberately broken messages, as a misbehaving integration would, bypassing validation."""
    producer = make_producer(settings)
    count = 0
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            value = base64.b64decode(item["value_base64"])
            if item.get("pad_text_beyond_limit"):
                event = json.loads(value)
                event["payload"]["text"] += "长" * (settings.runtime.max_event_bytes // 3 + 1)
                value = json.dumps(event, ensure_ascii=False).encode()
            producer.send(settings.topic(RAW), key=item["key"].encode(), value=value).get(timeout=30)
            count += 1
    finally:
        producer.close()
    return count


def _wait_for_drain(runtimes: list[StreamRuntime], injected: int, timeout_s: float) -> bool:
    """Wait until each stage has processed everything its upstream produced in this run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        produced: Counter[str] = Counter({RAW: injected})
        done = True
        for runtime in runtimes:
            if runtime.stats.processed < produced[runtime.stage.input_topic]:
                done = False
                break
            produced.update(runtime.stats.produced_by_topic)
        if done:
            return True
        time.sleep(0.1)
    return False


def in_event_time_order(items):
    """The file's valid events sorted by event time (stable: ties keep their line order), after its
    rejected lines: a replay reaches the stages in the order its events happened, so the alerter's
    windows see it as they would have live."""
    items = list(items)
    rejected = [item for item in items if isinstance(item[1], Rejected)]
    valid = [item for item in items if not isinstance(item[1], Rejected)]
    return rejected + sorted(valid, key=lambda item: item[1].received_at)


def run_main_job(
    settings: Settings,
    feedback_file: Path | None = None,
    malformed_file: Path | None = None,
    timeout_s: float = 300.0,
) -> MainJobReport:
    feedback_file = feedback_file or sample_path("feedback.jsonl")
    if not settings.kafka.bootstrap_servers:
        # The embedded broker's topics are this run's alone: one partition each, so every stage reads
        # the file as one stream in event-time order (several partitions are drained one after the
        # other, and events reached the alerter up to 10+ minutes behind its watermark).
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"default_partitions": 1})})
    with kafka_session(settings) as live:
        with feedback_file.open("rb") as lines:
            published = publish_events(live, in_event_time_order(parse_lines(lines, live.runtime.max_event_bytes)))
        malformed = send_malformed(live, malformed_file) if malformed_file else 0
        runtimes = [StreamRuntime(build_stage(name, live), live) for name in STAGES]
        alerter = next((r.stage for r in runtimes if r.stage.name == "alerter"), None)
        published_alerts: list = []
        if alerter is not None:
            alerter.published_listeners.append(published_alerts.extend)
        threads = [threading.Thread(target=r.run, name=f"stage-{r.stage.name}", daemon=True) for r in runtimes]
        for thread in threads:
            thread.start()
        try:
            drained = _wait_for_drain(runtimes, len(published.accepted) + malformed, timeout_s)
        finally:
            for runtime in runtimes:
                runtime.stop()
            for thread in threads:
                thread.join(timeout=30)
        digests = []
        if drained:
            from pipelines.digest.build import digests_for_events, kafka_announcer

            digests = digests_for_events(live, published.accepted, kafka_announcer(live))
        topics = {
            spec.name: [json.loads(r.value) for r in read_topic(live, spec.name) if r.value]
            for spec in topic_specs()
            if spec.name != RAW
        }
        stats = {r.stage.name: {"processed": r.stats.processed, "produced": r.stats.produced, "dead_lettered": r.stats.dead_lettered} for r in runtimes}
        report = MainJobReport(published, malformed, stats, topics, drained, digests)
        if alerter is not None:
            report.alerts = [alert.model_dump(mode="json") for alert in published_alerts]
            report.alerts_already_processed = alerter.stats.repeated_earlier
        return report
