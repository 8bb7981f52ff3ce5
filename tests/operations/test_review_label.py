"""``review`` exports a week's least-confident predictions; ``label`` records corrections (one, or a
filled-in review file) in the store and on feedback.corrections — against the real broker and store."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from consumers.store.corrections import CorrectionStore
from consumers.store.feedback_store import FeedbackStore
from models.corrections_data import heldout_fraction, issue_margin, least_confident, sentiment_margin, split
from models.corrections_data import LabelledText
from topics.schemas import Correction, Customer, EnrichedFeedback, IssueTypeScore, Sentiment
from topics.specs import CORRECTIONS

WEEK = "2026-W48"  # Monday 2026-11-23 .. Sunday 2026-11-29
MONDAY = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)


def _enriched(event_id: str, text: str, top: float, second: float, sentiment: str, score: float,
              when: datetime = MONDAY) -> EnrichedFeedback:
    rest = (1.0 - top - second) / 9
    probs = {"logistics": top, "product_quality": second}
    scores = [IssueTypeScore(label=lab, probability=probs.get(lab, rest)) for lab in (
        "logistics", "product_quality", "price_billing", "service_attitude", "refund_aftersales", "technical",
        "account_privacy", "policy_contract", "suggestion", "praise", "other")]
    return EnrichedFeedback(
        event_id=event_id, channel="app", source="test", received_at=when, customer=Customer(id="c1"), text=text,
        primary_issue="logistics", issue_types=["logistics"], issue_scores=scores,
        sentiment=Sentiment(label=sentiment, score=score), model_version="test-model",
    )


@pytest.fixture
def stored(kafka_settings):
    """Five predictions in WEEK with known margins, one in the week before."""
    store = FeedbackStore.from_url(kafka_settings.store.url)
    events = [
        _enriched("sure", "快递三天就到了，包装完好", 0.9, 0.05, "negative", -0.9),          # margins 0.85 / 0.9
        _enriched("coin", "东西和描述的不太一样，物流也慢", 0.45, 0.43, "negative", -0.8, MONDAY + timedelta(hours=1)),  # 0.02
        _enriched("flat", "收到了", 0.6, 0.2, "neutral", 0.48, MONDAY + timedelta(days=2)),   # sentiment 0.02 from the edge
        _enriched("mid", "配送员态度一般，送得还算快", 0.55, 0.25, "positive", 0.1, MONDAY + timedelta(days=3)),  # 0.1
        _enriched("late", "等了一周还没发货", 0.7, 0.1, "negative", -0.7, MONDAY + timedelta(days=6, hours=10)),  # 0.6
        _enriched("before", "上周的包裹", 0.4, 0.39, "negative", -0.1, MONDAY - timedelta(days=2)),  # another week
    ]
    store.upsert_enriched((e, np.zeros(384, np.float32)) for e in events)
    store.close()
    return kafka_settings


def _env(settings, user: str = "dana") -> dict:
    return {
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "FEEDBACK_MINER_STORE__URL": settings.store.url,
        "USER": user,
    }


def _published(settings) -> list[Correction]:
    from consumers.kafka_io import read_topic
    from topics.serde import decode

    return [decode(Correction, r.value, list(r.headers or [])) for r in read_topic(settings, CORRECTIONS, timeout_s=20)]


def test_margins_and_the_held_out_split_are_stable():
    assert issue_margin({"a": 0.5, "b": 0.3, "c": 0.2}) == pytest.approx(0.2)
    assert sentiment_margin("negative", -0.05) == pytest.approx(0.05)
    assert sentiment_margin("neutral", 0.45) == pytest.approx(0.05)
    assert sentiment_margin("neutral", 0.0) == pytest.approx(0.5)
    rows = [{"event_id": "x", "issue_scores": {"a": 0.9, "b": 0.1}, "sentiment": "positive", "sentiment_score": 0.9},
            {"event_id": "y", "issue_scores": {"a": 0.5, "b": 0.5}, "sentiment": "positive", "sentiment_score": 0.9}]
    assert [r["event_id"] for r in least_confident(rows, 1)] == ["y"]
    texts = [LabelledText(f"e{i}", "物流太慢", "logistics", ("logistics",), "negative") for i in range(400)]
    train, held = split(texts, 0.25)
    assert 0.18 < len(held) / 400 < 0.32 and len(train) + len(held) == 400
    assert split(texts, 0.25) == (train, held)  # by event id: the same every time
    assert all(heldout_fraction(c.event_id) < 0.25 for c in held)
    with pytest.raises(ValueError, match="taxonomy"):
        LabelledText("e", "t", "shipping", ("shipping",), "negative")


@pytest.mark.broker
def test_review_csv_then_label_file_records_and_publishes(stored, tmp_path):
    from pipelines.cli import app

    runner = CliRunner()
    out = tmp_path / "review.csv"
    result = runner.invoke(app, ["review", "--week", WEEK, "--limit", "4", "--out", str(out)], env=_env(stored))
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    # Least confident first (the smaller of the two margins); the confident one and last week's are left out.
    assert [r["event_id"] for r in rows] == ["coin", "flat", "mid", "late"]
    assert rows[0]["text"] == "东西和描述的不太一样，物流也慢" and rows[0]["predicted_primary_issue"] == "logistics"
    assert all(r["issue_types"] == r["sentiment"] == "" for r in rows)
    assert all(r["received_at"].endswith("+08:00") for r in rows)  # the configured zone, as alerts and the digest show times

    # A reviewer fills in two rows (Chinese names are fine), leaves two empty, and adds two bad lines.
    rows[0].update(issue_types="产品质量|物流配送", sentiment="negative", note="mainly the product")
    rows[1].update(sentiment="neutral")  # the issue type was right: only the sentiment is confirmed
    bad_label = {**rows[3], "event_id": "late", "issue_types": "shipping", "sentiment": ""}
    unknown = {**rows[3], "event_id": "nope", "issue_types": "logistics", "sentiment": "negative", "text": ""}
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, bad_label, unknown])
    labelled = runner.invoke(app, ["label", "--file", str(out)], env=_env(stored))
    assert labelled.exit_code == 1, labelled.output  # some lines bad: the rest is recorded
    assert "line 6:" in labelled.output and "unknown issue type 'shipping'" in labelled.output
    assert "line 7:" in labelled.output and "unknown event id 'nope'" in labelled.output
    assert "2 correction(s) recorded, 2 row(s) left unlabelled, 2 bad line(s)" in labelled.output

    store = CorrectionStore.from_url(stored.store.url)
    recorded = {c.event_id: c for c in store.history()}
    assert set(recorded) == {"coin", "flat"} and store.unpublished() == []
    coin = recorded["coin"]
    assert [t.value for t in coin.issue_types] == ["product_quality", "logistics"]
    assert coin.primary_issue.value == "product_quality" and coin.corrected_by == "dana" and coin.note == "mainly the product"
    assert coin.predicted_primary_issue.value == "logistics" and coin.model_version == "test-model"
    assert [t.value for t in recorded["flat"].issue_types] == ["logistics"]  # confirmed from the prediction
    published = _published(stored)
    assert sorted(c.event_id for c in published) == ["coin", "flat"]
    assert {c.correction_id for c in published} == {c.correction_id for c in recorded.values()}

    # Corrected events are not offered for review again.
    again = runner.invoke(app, ["review", "--week", WEEK, "--out", str(tmp_path / "again.jsonl")], env=_env(stored))
    assert again.exit_code == 0, again.output
    ids = [json.loads(line)["event_id"] for line in (tmp_path / "again.jsonl").read_text(encoding="utf-8").splitlines()]
    assert ids == ["mid", "late", "sure"]
    store.close()


@pytest.mark.broker
def test_label_one_event_and_bad_input(stored, tmp_path):
    from pipelines.cli import app

    runner = CliRunner()
    env = _env(stored)
    ok = runner.invoke(app, ["label", "mid", "-i", "service_attitude", "-i", "logistics", "-s", "negative",
                             "--by", "carol", "--note", "rude courier"], env=env)
    assert ok.exit_code == 0, ok.output
    unknown = runner.invoke(app, ["label", "missing-id", "-i", "logistics", "-s", "negative"], env=env)
    assert unknown.exit_code == 2 and "unknown event id 'missing-id'" in unknown.output and "--text" in unknown.output
    with_text = runner.invoke(app, ["label", "missing-id", "-i", "technical", "-s", "negative",
                                    "--text", "登录一直失败"], env=env)
    assert with_text.exit_code == 0, with_text.output
    bad = runner.invoke(app, ["label", "mid", "-i", "shipping", "-s", "negative"], env=env)
    assert bad.exit_code == 2 and "unknown issue type 'shipping'" in bad.output and "logistics" in bad.output
    bad_sentiment = runner.invoke(app, ["label", "mid", "-i", "logistics", "-s", "angry"], env=env)
    assert bad_sentiment.exit_code == 2 and "unknown sentiment 'angry'" in bad_sentiment.output

    published = {c.event_id: c for c in _published(stored)}
    assert set(published) == {"mid", "missing-id"}
    mid = published["mid"]
    assert [t.value for t in mid.issue_types] == ["service_attitude", "logistics"] and mid.corrected_by == "carol"
    assert mid.predicted_sentiment.value == "positive" and mid.corrected_at.tzinfo is not None
    assert published["missing-id"].predicted_primary_issue is None and published["missing-id"].corrected_by == "dana"

    # A bad JSONL line is named by its number; nothing of it is recorded.
    jsonl = tmp_path / "filled.jsonl"
    jsonl.write_text('{"event_id": "late", "issue_types": ["logistics"], "sentiment": "negative"}\n'
                     '\n{"event_id": "late", "sentiment": \n', encoding="utf-8")
    part = runner.invoke(app, ["label", "--file", str(jsonl)], env=env)
    assert part.exit_code == 1 and "line 3: invalid JSON" in part.output
    assert [c.event_id for c in CorrectionStore.from_url(stored.store.url).history()] == ["mid", "missing-id", "late"]

    # No broker: one red line, exit 3, nothing recorded.
    down = runner.invoke(app, ["label", "late", "-s", "neutral"], env={
        **env, "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9", "FEEDBACK_MINER_KAFKA__CONNECT_TIMEOUT_S": "2"})
    assert down.exit_code == 3, down.output
