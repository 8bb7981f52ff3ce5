"""The enriched event carries the model's aspect sentiments, one per issue type, in its order."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from consumers.enricher.stage import enriched_from
from tests.enricher.factories import event
from tests.enricher.fakes import FakePrediction


def _prediction(**extra) -> FakePrediction:
    pred = FakePrediction(embedding=np.eye(384, dtype=np.float32)[0],
                          issue_probs={"product_quality": 0.9, "logistics": 0.7}, issue_labels=["logistics", "product_quality"],
                          primary_issue="product_quality", sentiment="negative", sentiment_score=-0.6)
    for k, v in extra.items():
        setattr(pred, k, v)
    return pred


def test_each_issue_type_carries_its_own_sentiment():
    pred = _prediction(aspect_sentiments={"logistics": "positive", "product_quality": "negative"})
    out = enriched_from(event("e-1", "物流很快但是质量很差"), pred, None, "test", datetime.now(timezone.utc))
    assert [t.value for t in out.issue_types] == ["product_quality", "logistics"]
    assert [(a.issue_type.value, a.sentiment.value) for a in out.aspect_sentiments] == [
        ("product_quality", "negative"), ("logistics", "positive")]
    assert out.sentiment.label.value == "negative"  # the message's verdict stays


def test_a_model_without_aspects_gives_none():
    out = enriched_from(event("e-2", "太慢"), _prediction(), None, "test", datetime.now(timezone.utc))
    assert out.aspect_sentiments == []
