"""The benchmark's background traffic from real texts: the model's verdicts, cached; missing data is an error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from pipelines.bench.alert_streams import StreamSpec, generate, load_real_texts
from tests.alerts.helpers import T0
from topics.schemas import IssueType, SentimentLabel

REVIEWS = {"物流太慢了，等了一个星期才到": ("logistics", "negative", -0.8),
           "质量很好，做工精细，很满意": ("praise", "positive", 0.9),
           "收到就坏了，屏幕有裂痕": ("product_quality", "negative", -0.7)}


@dataclass
class _Prediction:
    primary_issue: str
    issue_labels: list[str]
    issue_probs: dict[str, float]
    sentiment: str
    sentiment_score: float
    aspect_sentiments: dict[str, str] = field(default_factory=dict)


class FakeModel:
    version = "fake-1"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, texts: list[str]) -> list[_Prediction]:
        self.calls += 1
        out = []
        for text in texts:
            issue, label, score = REVIEWS.get(text, ("other", "neutral", 0.0))
            out.append(_Prediction(issue, [issue], {issue: 0.9}, label, score, {issue: label}))
        return out


def _data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    rows = list(REVIEWS)
    (d / "online_shopping_9_cats.csv").write_text("cat,label,review\n" + f"手机,0,{rows[2]}\n手机,1,{rows[1]}\n", encoding="utf-8")
    (d / "waimai_10k.csv").write_text(f"label,review\n0,{rows[0]}\n", encoding="utf-8")
    (d / "chnsenticorp_train.csv").write_text("label,review\n1,房间干净，早餐也不错\n", encoding="utf-8")
    (d / "weibo_emotion_virus.jsonl").write_text(json.dumps({"text": "今天天气很好出去走走"}, ensure_ascii=False) + "\n", encoding="utf-8")
    return d


def test_real_texts_carry_the_models_verdicts_and_are_cached(tmp_path: Path) -> None:
    model = FakeModel()
    texts = load_real_texts(_data(tmp_path), tmp_path / "cache", predictor=model)
    again = load_real_texts(_data(tmp_path), tmp_path / "cache", predictor=model)
    assert model.calls == 1 and again.by_issue == texts.by_issue  # the second read is the cache's
    assert {t.text for t in texts.by_issue[IssueType.logistics]} == {"物流太慢了，等了一个星期才到"}
    assert texts.describe()["texts"] == 5 and texts.model_version == "fake-1"
    # A stream in the texts' mix: every event is one of the real texts with the model's labels and sentiment.
    rates = texts.rates(50.0)
    assert rates[IssueType.other] == pytest.approx(20.0) and IssueType.technical not in rates
    events = generate(StreamSpec(T0, timedelta(hours=6), rates_per_hour=rates, texts=texts, seed=3))
    assert len(events) > 100
    for e in events:
        issue, label, score = REVIEWS.get(e.text, ("other", "neutral", 0.0))
        assert (e.primary_issue.value, e.sentiment.label, e.sentiment.score) == (issue, SentimentLabel(label), score)
        assert [a.issue_type.value for a in e.aspect_sentiments] == [issue]


def test_a_stream_needs_real_texts_of_each_issue_type_it_asks_for(tmp_path: Path) -> None:
    texts = load_real_texts(_data(tmp_path), tmp_path / "cache", predictor=FakeModel())
    with pytest.raises(ValueError, match="technical"):
        generate(StreamSpec(T0, timedelta(hours=6), rates_per_hour={IssueType.technical: 5.0}, texts=texts))


def test_missing_shared_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="FEEDBACK_MINER_SHARED_DATA"):
        load_real_texts(tmp_path / "nowhere", tmp_path / "cache", predictor=FakeModel())
