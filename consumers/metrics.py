"""Prometheus metrics of the stream runtime (served on an optional port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

PROCESSED = Counter("feedback_miner_messages_processed_total", "Messages consumed and processed", ["stage"])
PRODUCED = Counter("feedback_miner_events_produced_total", "Events produced", ["stage", "topic"])
DEAD_LETTERED = Counter("feedback_miner_dead_lettered_total", "Messages sent to the dead-letter topic", ["stage", "reason"])
BATCH_LATENCY = Histogram(
    "feedback_miner_batch_seconds",
    "Time from batch start to commit",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PENDING = Gauge("feedback_miner_batch_pending", "Messages consumed into the open batch, not yet committed", ["stage"])
PAUSED = Gauge("feedback_miner_stage_paused", "1 while the stage is paused by a transient fault (store or broker down)", ["stage"])
TRANSIENT_FAULTS = Counter("feedback_miner_transient_faults_total", "Transient faults met (each one retried, never dead-lettered)", ["stage"])
CONSUMER_LAG = Gauge("feedback_miner_consumer_lag", "High-water mark minus committed position", ["stage", "topic", "partition"])

_served_ports: set[int] = set()


def serve(port: int | None) -> None:
    """Start the /metrics endpoint once per process and port."""
    if port is not None and port not in _served_ports:
        start_http_server(port)
        _served_ports.add(port)
