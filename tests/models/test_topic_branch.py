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


def test_a_branch_skips_middle_layers_but_never_its_last():
    from models.topic_branch import TopicBranch

    branch = TopicBranch(4, 12, 48, (6, 7, 8))
    assert branch.layers == [4, 5, 9, 10, 11]
    assert branch.version != TopicBranch(4, 12, 48).version  # another vector space: another ONNX build and cache key
    for skip in ((11,), (3,), (12,)):
        with pytest.raises(ValueError, match="skip_layers"):
            TopicBranch(4, 12, 48, skip)


def test_a_branch_without_middle_layers_still_groups_by_subject(model_dir):
    """Skipping layers 6-8 runs five untuned layers instead of eight, and each text's nearest neighbour is still one about
    the same subject, praise or complaint alike."""
    from models.feedback_model import FeedbackModel

    subjects = {
        "delivery": ["快递三天了还没到，物流信息一直不更新", "物流太快了，昨天下单今天就送到了", "快递员态度很好，送货上门很及时"],
        "colour": ["衣服洗了一次就严重掉色", "这件衣服颜色很正，洗了几次也没掉色", "裤子掉色把别的衣服都染了"],
        "payment": ["支付页面一直报错，付不了款", "付款的时候页面卡住，钱扣了订单没成功", "微信支付很顺利，一秒就付好了"],
    }
    texts = [t for group in subjects.values() for t in group]
    truth = [name for name, group in subjects.items() for _ in group]
    model = FeedbackModel.load(model_dir, quantize=False, topic_max_tokens=48, topic_skip_layers=(6, 7, 8))
    assert len(model.encoder.topic.layers) == 5
    vectors = model.forward(texts)["theme"]
    vectors = vectors - vectors.mean(0)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1)
    assert [truth[j] for j in similarity.argmax(1)] == truth
