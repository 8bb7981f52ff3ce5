"""The ONNX Runtime int8 path: built once, checked, close to fp32, and the tuned-layer packing."""

from __future__ import annotations

import json

import numpy as np
import pytest

TEXTS = [
    "外卖送得太慢了，汤都洒了。",
    "客服态度很好，问题很快就解决了！",
    "價格便宜，質量不錯，下次還會再來",
    "APP一直闪退😡，login 不上去",
    "这家酒店的服务实在太差了，前台态度恶劣，房间也很脏。" * 20,  # past max_length: truncated
]


def test_onnx_int8_encoder_stays_close_to_fp32(model_dir, encoder_fp32):
    from models.encoder import Encoder

    q = Encoder(model_dir, max_length=512, quantize="onnx_int8", pool_layers=[6])
    assert q.model is None and q.onnx is not None
    texts = TEXTS
    emb, pools = q.encode(texts, layers=[6, 12])
    ref, ref_pools = encoder_fp32.encode(texts, layers=[6, 12])
    assert (emb * ref).sum(1).min() > 0.98
    mid = (pools[:, 0] * ref_pools[:, 0]).sum(1) / np.linalg.norm(pools[:, 0], axis=1) / np.linalg.norm(ref_pools[:, 0], axis=1)
    # A middle layer's raw (uncentred) pool is further from fp32 than the output (0.974-0.989 with 7-bit weights
    # on an AVX2-only CPU; 8-bit weights saturated there: 0.960-0.974).
    assert mid.min() > 0.97
    with pytest.raises(ValueError, match="pools layers"):
        q.encode(texts[:2], layers=[3])


def test_a_texts_scores_do_not_depend_on_its_batch_neighbours(model_dir):
    """Activation scales are calibrated constants, not computed per batch (issue 16: dynamic int8
    put a text's sentiment up to 0.32 apart alone and in a batch)."""
    from models.encoder import Encoder

    q = Encoder(model_dir, max_length=512, quantize="onnx_int8", pool_layers=[6])
    neighbours = ["垃圾！！！再也不买了😡😡😡" * 5, "The app keeps crashing after the update, can't log in at all",
                  "您好，我购买的洗衣机安装后第二天就漏水，联系售后三次都没有人处理，地板都泡坏了。" * 6, "好"] * 8
    alone_emb = np.concatenate([q.encode([t], layers=[6, 12])[1] for t in TEXTS])
    for batch in (TEXTS + neighbours, neighbours[:5] + TEXTS[::-1] + neighbours[5:]):
        _, pools = q.encode(batch, batch_size=16, layers=[6, 12])
        index = [batch.index(t) for t in TEXTS]
        assert np.abs(pools[index] - alone_emb).max() <= 0.01


def test_a_texts_class_scores_do_not_depend_on_its_batch_neighbours():
    """The shipped model end to end, as the enricher loads it (with the topic branch): sentiment, issue
    probabilities and the theme embedding alone vs in mixed batches, ≤ 0.01."""
    from pipelines.enrichment import production_model
    from topics.settings import Settings

    model = production_model(Settings())
    assert model.encoder.topic_branch is not None
    alone = [model.forward([t]) for t in TEXTS]
    mixed = model.forward(["差评", *TEXTS, "The app keeps crashing" * 10, "物流很快，好评！" * 12], batch_size=4)
    for key in ("sentiment", "issue", "primary", "theme"):
        single = np.concatenate([a[key] for a in alone])
        assert np.abs(mixed[key][1 : 1 + len(TEXTS)] - single).max() <= 0.01, key


def test_onnx_build_is_reused_and_rebuilt_when_corrupt(model_dir):
    from models.atomic_build import sha256_file
    from models.encoder import ensure_model_folder, model_version
    from models.onnx_int8 import ensure_onnx_int8

    folder = ensure_model_folder(model_dir)
    path = ensure_onnx_int8(model_dir, folder, None, [6, 12], model_version())  # the build of the test above
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["fusions"]["Attention"] == 12 and manifest["size"] == path.stat().st_size
    assert manifest["activation_scales"] == "calibrated" and manifest["calibrated_tensors"] > 0
    assert manifest["matmul_integer_to_float"] == 3 * 12  # attention output, FFN in and out of every layer
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx_int8(model_dir, folder, None, [6, 12], model_version()) == path
    assert path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    with path.open("r+b") as f:  # same size, different bytes: only the checksum notices
        f.seek(path.stat().st_size // 2)
        f.write(b"\x00\x01\x02\x03")
    assert ensure_onnx_int8(model_dir, folder, None, [6, 12], model_version()) == path
    assert path.stat().st_mtime_ns != stamp
    assert sha256_file(path) == json.loads((path.parent / "manifest.json").read_text())["sha256"]


def test_integer_matmul_chains_fuse_into_one_kernel_with_the_same_result(tmp_path):
    """QuantizeLinear -> MatMulInteger -> Cast -> Mul(scales) -> Add(bias), as the quantiser writes it behind our
    fixed activation scales, becomes one MatMulIntegerToFloat with the same output."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from models.onnx_int8 import fuse_integer_matmuls

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(v, name) for name, v in {
        "a_scale": np.array(0.05, np.float32), "a_zero": np.array(118, np.uint8),
        "w": rng.integers(-63, 64, (8, 4)).astype(np.int8), "w_scale": rng.uniform(0.01, 0.1, 4).astype(np.float32),
        "w_zero": np.zeros(4, np.int8), "bias": rng.normal(size=4).astype(np.float32)}.items()]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "a_scale", "a_zero"], ["x_q"]),
        helper.make_node("Mul", ["a_scale", "w_scale"], ["scales"]),
        helper.make_node("MatMulInteger", ["x_q", "w", "a_zero", "w_zero"], ["y32"]),
        helper.make_node("Cast", ["y32"], ["y_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["y_f", "scales"], ["y_scaled"]),
        helper.make_node("Add", ["bias", "y_scaled"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], inits)
    static, fused = tmp_path / "static.onnx", tmp_path / "fused.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(static))

    assert fuse_integer_matmuls(static, fused) == 1
    assert [n.op_type for n in onnx.load(str(fused)).graph.node] == ["QuantizeLinear", "MatMulIntegerToFloat"]
    x = rng.normal(size=(5, 8)).astype(np.float32) * 3
    run = lambda path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]  # noqa: E731
    np.testing.assert_allclose(run(fused), run(static), rtol=1e-6, atol=1e-6)


def test_tuned_layers_pack_to_int8_rows_and_back():
    from models.feedback_model import SCALE_SUFFIX, pack_tuned_layers, unpack_tuned_layers

    rng = np.random.default_rng(0)
    state = {"w": rng.normal(0, 0.05, (384, 1536)).astype(np.float32), "b": rng.normal(0, 1, 384).astype(np.float32)}
    packed = pack_tuned_layers(state)
    assert packed["w"].dtype == np.int8 and packed["w" + SCALE_SUFFIX].shape == (384,)
    assert packed["b"].dtype == np.float16
    back = unpack_tuned_layers(packed)
    assert set(back) == {"w", "b"}
    x = rng.normal(0, 1, (16, 1536)).astype(np.float32)
    y, y2 = x @ state["w"].T, x @ back["w"].T
    assert ((y * y2).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(y2, axis=1)).min() > 0.9999
    # fp16 artifacts from before the packing still load
    assert unpack_tuned_layers({"w": state["w"].astype(np.float16)})["w"].dtype == np.float32


def test_quantize_setting_accepts_paths_and_bools():
    from topics.settings import Settings

    assert Settings().model.quantize == "onnx_int8"
    assert Settings(model={"quantize": False}).model.quantize == "none"
    assert Settings(model={"quantize": "true"}).model.quantize == "onnx_int8"
    assert Settings(model={"quantize": "none"}).model.quantize == "none"
    for gone in ("torch_int8", "torch_int8_all", "fp8"):  # the torch int8 paths were removed (METHOD.md)
        with pytest.raises(ValueError):
            Settings(model={"quantize": gone})


def test_only_the_builds_used_last_stay_in_the_cache(tmp_path):
    """Every model version gets its own build; the served model keeps ``keep`` of them, by last use."""
    import os

    from models.onnx_int8 import MANIFEST, MODEL_FILE, prune_onnx_builds

    def build(name: str, used_at: int):
        folder = tmp_path / name
        folder.mkdir()
        (folder / MODEL_FILE).write_bytes(b"onnx")
        (folder / MANIFEST).write_text("{}")
        os.utime(folder / MANIFEST, (used_at, used_at))
        return folder

    builds = {name: build(name, used_at) for name, used_at in
              [("v1", 1_000), ("v2", 2_000), ("v3", 3_000), ("v4", 4_000), ("rolled-back-to", 500)]}
    in_progress = tmp_path / ".build-abc"
    in_progress.mkdir()  # a build another process is writing: no manifest yet, and hidden
    stray = tmp_path / "not-a-build"
    stray.mkdir()  # no manifest: not ours to judge

    removed = prune_onnx_builds(tmp_path, keep=3, current=builds["rolled-back-to"])

    # The current build stays although it was used longest ago (its mtime is touched only after the call).
    assert sorted(p.name for p in removed) == ["v1", "v2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".build-abc", "not-a-build", "rolled-back-to", "v3", "v4"]
    assert prune_onnx_builds(tmp_path, keep=3, current=builds["v4"]) == []
