"""The enricher stage on a real store (SQLite and PostgreSQL): its own logic with a keyword stand-in
for the model, and one test of the whole stage on the real model."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.faults import is_transient
from consumers.stage import InMessage, process_batch
from consumers.store.feedback_store import FeedbackStore
from tests.enricher.factories import enricher, event, message
from tests.enricher.fakes import KeywordClassifier
from topics.schemas import EnrichedFeedback, IssueType
from topics.specs import ENRICHED, NORMALIZED

TEXTS = {
    "n1": "外卖送了一个半小时才到，饭菜全凉了，骑手还不接电话。",
    "n2": "更新到最新版本后一打开就闪退，根本没法下单！",
    "n3": "菜品很新鲜，味道很好，送餐也快，好评！",
    "n4": "外卖超时一个小时才送到，饭菜都凉透了。",
}


@pytest.fixture
def store(store_url):
    s = FeedbackStore.from_url(store_url)
    yield s
    s.close()


@pytest.fixture
def fake_model() -> KeywordClassifier:
    return KeywordClassifier()


@pytest.mark.model
def test_batch_is_classified_themed_stored_and_published(store, feedback_model):
    batch = [message(event(k, v), i) for i, (k, v) in enumerate(TEXTS.items())]
    result = process_batch(enricher(store, feedback_model), batch)

    assert not result.dead_letters
    assert [o.topic for o in result.outputs] == [ENRICHED] * 4
    assert [o.trace_id for o in result.outputs] == [f"trace-{i}" for i in range(4)]
    out = {o.event.event_id: o.event for o in result.outputs}
    assert all(isinstance(e, EnrichedFeedback) for e in out.values())
    assert {s.label for s in out["n1"].issue_scores} == set(IssueType)
    assert out["n1"].issue_types[0] == out["n1"].primary_issue
    # The model's own outputs, carried through: praise scores above a complaint.
    direct = {k: p for k, p in zip(TEXTS, feedback_model.predict(list(TEXTS.values())))}
    assert out["n3"].sentiment.score > out["n1"].sentiment.score
    assert out["n2"].primary_issue.value == direct["n2"].primary_issue
    assert out["n1"].sentiment.label.value == direct["n1"].sentiment
    assert out["n1"].model_version == feedback_model.version
    # The two late-delivery complaints share a live theme; the crash report does not.
    assert out["n1"].theme_id == out["n4"].theme_id != out["n2"].theme_id

    assert store.count_enriched() == 4
    row = store.get_enriched("n2")
    assert row["text"] == TEXTS["n2"] and row["theme_id"] == out["n2"].theme_id
    # Themes use the model's topic embedding (centred), stored beside the classifier embedding.
    from consumers.themes.representation import topic_vectors

    assert direct["n2"].theme_embedding.shape == (384,) and abs(np.linalg.norm(direct["n2"].theme_embedding) - 1) < 1e-4
    assert np.abs(row["theme_embedding"] - topic_vectors(direct["n2"].theme_embedding)).max() < 2e-3
    assert np.abs(row["embedding"] - direct["n2"].embedding).max() < 2e-3
    assert row["primary_issue"] == out["n2"].primary_issue.value
    assert row["embedding"].dtype == np.float32 and row["embedding"].shape == (384,)
    assert float(row["embedding"] @ direct["n2"].embedding) > 0.999  # float16 storage keeps the direction


def test_redelivered_event_leaves_one_row_and_moves_no_centroid(store, fake_model):
    stage = enricher(store, fake_model)
    first = process_batch(stage, [message(event("r1", TEXTS["n1"]), 0), message(event("r2", TEXTS["n4"]), 1)])
    sizes = {t.theme_id: t.size for t in store.load_themes()}
    # Redelivered after a crash: the same event again, also twice within one batch.
    again = process_batch(stage, [message(event("r1", TEXTS["n1"]), 0), message(event("r1", TEXTS["n1"]), 0)])

    assert store.count_enriched() == 2
    assert {o.event.theme_id for o in again.outputs} == {first.outputs[0].event.theme_id}
    assert {t.theme_id: t.size for t in store.load_themes()} == sizes
    assert sum(t.size for t in stage.themes.themes()) == 2


def test_themes_survive_a_restart(store_url, fake_model):
    first = FeedbackStore.from_url(store_url)
    out1 = process_batch(enricher(first, fake_model), [message(event("a1", TEXTS["n1"]), 0)]).outputs[0].event
    first.close()

    # A new process: store and themes come back from the database.
    second = FeedbackStore.from_url(store_url)
    themes = second.load_themes()
    assert [(t.theme_id, t.size) for t in themes] == [(out1.theme_id, 1)]
    out2 = process_batch(enricher(second, fake_model), [message(event("a2", TEXTS["n4"]), 0)]).outputs[0].event
    assert out2.theme_id == out1.theme_id
    assert {t.theme_id: t.size for t in second.load_themes()} == {out1.theme_id: 2}
    second.close()


def test_bad_input_is_dead_lettered_and_the_rest_goes_through(store, fake_model):
    good = message(event("g1", TEXTS["n2"]), 0)
    not_json = InMessage(NORMALIZED, 0, 1, b"k", b"{not json", [])
    blank = message(event("b1", "   "), 2)
    wrong_schema = InMessage(NORMALIZED, 0, 3, b"k", b'{"event_id": "x"}', [])
    result = process_batch(enricher(store, fake_model), [good, not_json, blank, wrong_schema])

    assert [o.event.event_id for o in result.outputs] == ["g1"]
    reasons = {(d.offset, d.reason.value) for d in result.dead_letters}
    assert reasons == {(1, "not_json"), (2, "schema_invalid"), (3, "schema_invalid")}
    blank_dl = next(d for d in result.dead_letters if d.offset == 2)
    assert blank_dl.event_id == "b1" and blank_dl.original_bytes() == blank.value
    assert store.count_enriched() == 1


def test_a_broken_store_is_not_the_messages_fault(tmp_path, fake_model):
    store = FeedbackStore.from_url(f"sqlite:///{tmp_path / 'gone.db'}")
    stage = enricher(store, fake_model)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE enriched_feedback")
    with pytest.raises(Exception) as failure:
        process_batch(stage, [message(event("f1", TEXTS["n1"]), 0)])
    # The runtime keeps such a batch and retries it (README, outages); nothing is dead-lettered.
    assert is_transient(failure.value) and "enriched_feedback" in str(failure.value)
    assert len(stage.themes) == 0  # the failed batch did not move the live themes
    store.close()


class _TopicClassifier(KeywordClassifier):
    """Classifier embeddings say "complaint" for both texts; the theme embeddings tell the topics apart."""

    def predict(self, texts, batch_size: int = 64):
        from dataclasses import dataclass

        from consumers.themes.representation import theme_center

        @dataclass
        class WithTheme:
            embedding: np.ndarray
            issue_probs: dict
            issue_labels: list
            primary_issue: str
            sentiment: str
            sentiment_score: float
            theme_embedding: np.ndarray

        out = []
        for p, text in zip(super().predict(texts, batch_size), texts):
            same = np.zeros(384, np.float32)
            same[0] = 1.0
            topic = theme_center() + (np.eye(384, dtype=np.float32)[5] if "外卖" in text else np.eye(384, dtype=np.float32)[6])
            out.append(WithTheme(same, p.issue_probs, p.issue_labels, p.primary_issue, p.sentiment, p.sentiment_score, topic / np.linalg.norm(topic)))
        return out


def test_live_themes_follow_the_theme_embedding_not_the_classifier_embedding(store):
    stage = enricher(store, _TopicClassifier())
    result = process_batch(stage, [message(event("t1", TEXTS["n1"]), 0), message(event("t2", TEXTS["n4"]), 1), message(event("t3", TEXTS["n2"]), 2)])
    theme = {o.event.event_id: o.event.theme_id for o in result.outputs}
    assert theme["t1"] == theme["t2"] != theme["t3"]  # same classifier embedding, different topics
    row = store.get_enriched("t3")
    assert row["theme_embedding"] is not None and float(row["theme_embedding"] @ row["embedding"]) < 0.5
