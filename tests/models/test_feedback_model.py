"""FeedbackModel: the contract the enricher relies on, on the real shipped artifacts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.sentiment_heads import lexical_logits, sentiment_probs
from models.taxonomy import ISSUE_TYPES, SENTIMENTS

pytestmark = pytest.mark.model

TEXTS = [
    "快递三天了还没到，物流太慢了",
    "菜品很新鲜，味道很好，送餐也快，好评！",
    "申请退款一周了还没到账，客服也不回复",
    "APP一打开就闪退，登录不了",
    "酒店房间干净，服务员很热情，下次还住",
    "衣服质量很差，穿一次就开线了",
    "我的账号被盗了，个人信息泄露，天天接到骚扰电话",
    "建议增加夜间模式和字体大小设置",
    "價格太貴了，還亂收費",
    "",
]


def test_prediction_contract(feedback_model):
    preds = feedback_model.predict(TEXTS, batch_size=4)
    assert len(preds) == len(TEXTS)
    assert isinstance(feedback_model.version, str) and feedback_model.version
    for p in preds:
        assert p.embedding.dtype == np.float32 and p.embedding.shape == (384,)
        assert math.isclose(float(np.linalg.norm(p.embedding)), 1.0, abs_tol=1e-4)
        assert list(p.issue_probs) == list(ISSUE_TYPES)
        assert all(0.0 <= v <= 1.0 for v in p.issue_probs.values())
        assert p.issue_labels and p.issue_labels[0] == p.primary_issue
        assert len(set(p.issue_labels)) == len(p.issue_labels)
        assert set(p.issue_labels) <= set(ISSUE_TYPES)
        assert p.sentiment in SENTIMENTS
        assert -1.0 <= p.sentiment_score <= 1.0
        with pytest.raises(AttributeError):
            p.sentiment = "positive"  # frozen
    assert feedback_model.predict([]) == []


def test_predictions_make_sense(feedback_model):
    preds = feedback_model.predict(TEXTS[:9])
    by = dict(zip(TEXTS, preds))
    assert by["快递三天了还没到，物流太慢了"].primary_issue == "logistics"
    assert by["APP一打开就闪退，登录不了"].primary_issue == "technical"
    assert by["菜品很新鲜，味道很好，送餐也快，好评！"].sentiment == "positive"
    assert by["衣服质量很差，穿一次就开线了"].sentiment == "negative"
    assert by["菜品很新鲜，味道很好，送餐也快，好评！"].sentiment_score > 0.5
    assert by["申请退款一周了还没到账，客服也不回复"].sentiment_score < -0.5
    assert "refund_aftersales" in by["申请退款一周了还没到账，客服也不回复"].issue_labels


def test_sentiment_blends_the_encoder_and_ngram_heads(feedback_model):
    m = feedback_model
    assert m.sentiment_ngrams is not None and 0.0 < m.sentiment_blend < 1.0
    texts = TEXTS[:6]
    served = m.forward(texts)["sentiment"]
    _, pooled = m.encoder.encode(texts, layers=[m.split, m.last])
    encoder_logits = pooled[:, 1] @ m.sent_w.T + m.sent_b
    ngram_logits = lexical_logits(m.sentiment_ngrams, texts, m.heads)
    assert np.allclose(served, sentiment_probs(encoder_logits, ngram_logits, m.sentiment_blend), atol=1e-4)
    assert not np.allclose(served, sentiment_probs(encoder_logits, None, 1.0), atol=1e-3)


def test_one_forward_pass_per_text(feedback_model, monkeypatch):
    calls = []
    run = feedback_model.encoder._pool_batch

    def counting(ids, mask, layers):
        calls.append((ids.shape[0], list(layers)))
        return run(ids, mask, layers)

    monkeypatch.setattr(feedback_model.encoder, "_pool_batch", counting)
    feedback_model.predict(TEXTS[:8], batch_size=4)
    # two batches of four: the encoder ran once per text, pooling both layers the heads read
    assert calls == [(4, [feedback_model.split, feedback_model.last])] * 2


def test_batching_does_not_change_predictions(feedback_model):
    a = feedback_model.predict(TEXTS[:6], batch_size=1)
    b = feedback_model.predict(TEXTS[:6], batch_size=64)
    for x, y in zip(a, b):
        assert x.primary_issue == y.primary_issue and x.sentiment == y.sentiment
        # dynamic int8 quantises activations per batch: neighbours shift the scale slightly
        assert float(x.embedding @ y.embedding) > 0.97


def test_primary_head_choice_leads_the_label_set():
    from models.feedback_model import decide_issue_labels
    from models.taxonomy import ISSUE_TYPES

    probs = np.full(len(ISSUE_TYPES), 0.05, np.float32)
    probs[ISSUE_TYPES.index("logistics")] = 0.9
    probs[ISSUE_TYPES.index("suggestion")] = 0.6
    probs[ISSUE_TYPES.index("praise")] = 0.7
    th = np.full(len(ISSUE_TYPES), 0.5, np.float32)
    # without a primary head: the most probable label; praise never joins a complaint
    assert decide_issue_labels(probs, th) == ("logistics", ["logistics", "suggestion"])
    # the primary head may pick a less probable label: it leads, the others follow once
    assert decide_issue_labels(probs, th, ISSUE_TYPES.index("suggestion")) == ("suggestion", ["suggestion", "logistics"])
    assert decide_issue_labels(probs, th, ISSUE_TYPES.index("other")) == ("other", ["other"])
    # praise joins an improvement idea, never a complaint
    assert decide_issue_labels(probs, th, ISSUE_TYPES.index("praise")) == ("praise", ["praise", "suggestion"])
    probs[ISSUE_TYPES.index("logistics")] = 0.05
    assert decide_issue_labels(probs, th) == ("praise", ["praise", "suggestion"])
    assert decide_issue_labels(probs, th, ISSUE_TYPES.index("suggestion")) == ("suggestion", ["suggestion", "praise"])


@pytest.mark.parametrize("prefix", [None, "", "query: "])
def test_the_encoder_reads_texts_with_the_prefix_its_artifacts_name(tmp_path, model_dir, prefix):
    import json
    import shutil

    from models.encoder import QUERY_PREFIX
    from models.feedback_model import ARTIFACTS_DIR, CONFIG_FILE, FeedbackModel

    art = tmp_path / "artifacts"
    shutil.copytree(ARTIFACTS_DIR, art)
    config = json.loads((art / CONFIG_FILE).read_text())
    config.pop("prefix", None)
    if prefix is not None:
        config["prefix"] = prefix
    (art / CONFIG_FILE).write_text(json.dumps(config))
    model = FeedbackModel.load(model_dir, art, quantize=False)
    # Artifacts from before the field was recorded were tuned with e5's query prefix.
    expected = QUERY_PREFIX if prefix is None else prefix
    assert model.encoder.prefix == expected
    ids = model.encoder.token_ids(["物流太慢了"])[0]
    bare = model.encoder.tokenizer.encode("物流太慢了", add_special_tokens=False).ids
    assert ids[len(ids) - len(bare):] == bare and (len(ids) > len(bare)) == bool(expected)
