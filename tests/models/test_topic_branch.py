"""The topic branch: the untuned top layers run on the served pass's shared hidden states."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = ["快递三天还没到，客服也不回复", "衣服洗一次就掉色了", "支付页面一直报错502，付不了款", "很好吃，下次还来",
         "会员自动续费没有提醒，要求退款"]


@pytest.fixture(scope="module")
def fp32_models(model_dir):
    from models.feedback_model import FeedbackModel

    return (FeedbackModel.load(model_dir, quantize=False),
            FeedbackModel.load(model_dir, quantize=False, topic_max_tokens=64))


def test_the_branch_is_the_untuned_encoders_last_layer_and_leaves_the_served_outputs_alone(model_dir, fp32_models):
    from models.encoder import Encoder

    served, branched = fp32_models
    untuned = Encoder(model_dir, max_length=64, quantize=False, prefix=branched.encoder.prefix)
    topic = branched.forward(TEXTS)
    # Texts shorter than the branch's tokens: exactly the untuned model's last-layer pool.
    assert (topic["theme"] * untuned.encode(TEXTS)).sum(1).min() > 0.9999
    plain = served.forward(TEXTS)
    for key in ("embedding", "sentiment", "issue", "primary"):
        assert np.abs(topic[key] - plain[key]).max() < 1e-5, key
    # Not the split-layer pool the model without the branch hands to themes.
    assert (topic["theme"] * plain["theme"]).sum(1).max() < 0.95


def test_the_branch_reads_only_its_first_tokens(fp32_models):
    _, branched = fp32_models
    head = "支付页面一直报错502，付不了款。"
    tail = "另外我还想说一下物流的问题，包装也破了，客服也不理人，" * 10  # well past 64 tokens
    vectors = branched.forward([head + tail, head + "物流很快，包装完好，客服很热情，" * 10])["theme"]
    short = branched.forward([head])["theme"]
    assert float(vectors[0] @ vectors[1]) > 0.8  # the tails differ, the first 64 tokens mostly agree
    assert float(vectors[0] @ short[0]) < 0.9999  # yet they are read: not just the head


def test_a_branch_needs_the_layers_below_it_untouched():
    from models.topic_branch import TopicBranch

    branch = TopicBranch(4, 12, 64)
    branch.check_shared({"encoder.layer.4.attention.self.query.weight": 0, "encoder.layer.11.output.dense.bias": 0})
    for name in ("encoder.layer.3.output.dense.weight", "embeddings.word_embeddings.weight"):
        with pytest.raises(ValueError, match="topic branch shares"):
            branch.check_shared({name: 0})
    with pytest.raises(ValueError):
        TopicBranch(12, 12)
