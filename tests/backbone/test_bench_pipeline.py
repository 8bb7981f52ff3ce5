"""``bench pipeline`` on a few hundred real events: every stage in its own process, the real broker,
model and a SQLite file store; the report has its figures and every published event came out enriched."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from pipelines.bench.pipeline import (
    STAGE_NAMES,
    PipelineBenchOptions,
    run_pipeline_benchmark,
)
from pipelines.cli.bench import write_report
from topics.settings import Settings

pytestmark = [pytest.mark.model, pytest.mark.broker]

EVENTS = 150
LATENCY_EVENTS = 60


def test_bench_pipeline_small_run(broker, tmp_path):
    settings = Settings(kafka={"bootstrap_servers": broker.bootstrap_servers})
    options = PipelineBenchOptions(events=EVENTS, latency_seconds=1.0, min_latency_events=LATENCY_EVENTS,
                                   model_texts=64, warmup_events=16, workdir=tmp_path / "run", timeout_s=300)
    out = tmp_path / "pipeline.json"
    write_report(out, run_pipeline_benchmark(settings, options, log=lambda _: None))
    report = json.loads(out.read_text(encoding="utf-8"))

    assert {"summary", "throughput", "latency", "model", "processes", "settings", "machine", "load", "date"} <= set(report)
    throughput = report["throughput"]
    # Every published event came out of the enricher; none was dead-lettered.
    assert (throughput["events"], throughput["enriched"], throughput["dead_lettered"]) == (EVENTS, EVENTS, 0)
    assert throughput["raw_to_enriched_per_s"] > 0
    assert 0 < throughput["raw_to_alerts_per_s"] <= throughput["raw_to_enriched_per_s"] * 1.05

    latency = report["latency"]
    assert latency["events"] == LATENCY_EVENTS
    for name in ("publish_to_enriched", "publish_to_alerter_committed"):
        figures = latency[name]
        assert figures["n"] == LATENCY_EVENTS, name  # each paced event was timed
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    # The alerter is done with an event after the enricher produced it.
    assert latency["publish_to_alerter_committed"]["p50_ms"] >= latency["publish_to_enriched"]["p50_ms"]

    model = report["model"]
    assert model["texts"] == 64 and model["per_s"] > 0
    summary = report["summary"]
    assert summary["ratio_pipeline_to_model"] == pytest.approx(throughput["raw_to_enriched_per_s"] / model["per_s"], rel=0.01)
    assert summary["offered_per_s"] == pytest.approx(0.5 * min(throughput["raw_to_enriched_per_s"], throughput["raw_to_alerts_per_s"]), abs=0.1)
    assert 0 < summary["enricher_cpu_efficiency"] < 2
    assert isinstance(summary["goal_ratio_at_least_0_9"], bool) and isinstance(summary["goal_alert_p95_at_most_1s"], bool)
    assert len(report["load"]["start"]) == len(report["load"]["end"]) == 3

    processes = report["processes"]
    assert {*STAGE_NAMES, "broker", "benchmark"} <= set(processes)
    for name in STAGE_NAMES:
        assert processes[name]["events"] == EVENTS, name  # each stage's own batch log counts the throughput phase
        assert processes[name]["cpu_seconds"] > 0, name
    # The enricher, which runs the model, costs more CPU per event than the other stages.
    assert processes["enricher"]["cpu_ms_per_event"] > processes["normalizer"]["cpu_ms_per_event"]

    # The store holds one row per event of every phase (warm-up, throughput, latency).
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'run' / 'store.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*), count(DISTINCT event_id) FROM enriched_feedback")).one()
    engine.dispose()
    assert tuple(rows) == (16 + EVENTS + LATENCY_EVENTS,) * 2
