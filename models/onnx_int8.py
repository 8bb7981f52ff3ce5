"""The fast CPU path: the encoder exported to ONNX, fused and int8-quantised for ONNX Runtime.

Built once per (base model, tuned weights, pooled layers, topic branch, onnxruntime version) into the model
directory, like the converted encoder folder (``models.atomic_build``): torch export (eager attention, so ONNX
Runtime's transformer optimiser can fuse attention, embedding + LayerNorm and bias + GELU),
then int8 quantisation of every MatMul and the attention projections with one scale per weight
column and **calibrated, fixed activation scales** (so a text's scores never depend on its batch
neighbours; see ``build_onnx_int8``). The graph returns the mean pools of the requested layers
(and of the topic branch, ``models.topic_branch``), so pooling costs nothing extra in Python.

Speed against torch fp32 depends on the CPU's int8 instructions; ``bench model`` measures it in
every run (benchmarks/model.json). Measured 2026-12-06 (2 cores, AVX-512 VNNI, short sentences):
2.74× fp32 at batch 64 (1,043 vs 380 sentences/s; median of 5: 2.63×), 2.9× at 16, 6.7× at 1.
The per-batch dynamic scales before it measured 4.2× on this CPU (2026-11-30) and 1.83× on an
AVX2-only one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.atomic_build import build_lock, ensure_built, sha256_file, utc_stamp
from models.pooling import mean_pool
from models.topic_branch import TopicBranch, topic_module

# 2: calibrated activation scales (batch-independent scores); 3: 7-bit weights (same scores on CPUs without VNNI);
# 4: each integer MatMul with its rescale and bias in one MatMulIntegerToFloat kernel (same scores, faster)
EXPORT_VERSION = "4"
MODEL_FILE = "encoder-int8.onnx"
MANIFEST = "manifest.json"
# ONNX Runtime's fused SkipLayerNormalization kernel is ~4× slower per element than a plain
# Add + LayerNormalization on these CPUs (profiled: 21 % of the int8 run time vs 4 %).
DISABLED_FUSIONS = ["SkipLayerNormFusion"]

log = logging.getLogger(__name__)


def export_key(base_version: str, state: dict, layers: Sequence[int], topic: TopicBranch | None = None) -> str:
    """Identifies one build: base model, tuned weights, pooled layers, topic branch and the onnxruntime version."""
    import onnxruntime

    branch = f"|{topic.version}" if topic else ""
    h = hashlib.sha256(f"{EXPORT_VERSION}|{base_version}|{list(layers)}{branch}|{onnxruntime.__version__}".encode())
    for name in sorted(state):
        h.update(name.encode())
        h.update(np.ascontiguousarray(state[name].detach().numpy() if hasattr(state[name], "detach")
                                      else state[name]).tobytes())
    return h.hexdigest()[:16]


def _export_fp32(folder: Path, state: dict | None, layers: Sequence[int], path: Path,
                 topic: TopicBranch | None = None) -> tuple[int, int]:
    import warnings

    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(str(folder), add_pooling_layer=False, attn_implementation="eager")
    branch = topic_module(model, topic) if topic else None  # copied before the tuned weights go in
    if state:
        model.load_state_dict(state, strict=False)
    model.eval()
    layers = list(layers)

    class Pools(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model
            self.topic = branch

        def forward(self, input_ids, attention_mask):
            res = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=torch.zeros_like(input_ids), output_hidden_states=True)
            pools = [mean_pool(res.hidden_states[k], attention_mask) for k in layers]
            if self.topic is not None:
                pools.append(self.topic(res.hidden_states[topic.from_layer], attention_mask))
            return torch.stack(pools, dim=1)

    ids = torch.randint(5, 1000, (2, 12))
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pools().eval(), (ids, torch.ones_like(ids)), str(path),
            input_names=["input_ids", "attention_mask"], output_names=["pools"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "pools": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
    return model.config.num_attention_heads, model.config.hidden_size


# Calibration texts for the activation ranges: short and long, complaints, praise, questions, mixed
# scripts, numbers and emoji, the kinds of feedback the pipeline sees.
CALIBRATION_TEXTS = [
    "外卖送了一个半小时才到，饭菜全凉了", "快递三天了还没到，物流信息一直不更新", "客服态度很好，问题很快就解决了。",
    "价格有点贵，但是质量不错", "退款申请提交三天了还没到账", "APP一直闪退，登录不上", "希望增加夜间模式",
    "物流很快，第二天就到了，好评！", "会员自动续费没有提醒，要求退款", "我的账号被盗了，还收到很多骚扰电话",
    "菜品分量太少，味道一般", "酒店房间干净，服务周到", "打了五次客服电话都没人处理", "优惠券用不了，结账多收了钱",
    "充电宝充电时起火了，床单烧了一块，幸好没有人受伤", "吃了你们的外卖全家食物中毒住院了，我要找律师起诉你们",
    "请问你们周末营业吗？", "衣服洗一次就掉色了，和描述的完全不一样，做工粗糙，申请退货一直不处理",
    "The app keeps crashing after the update 8.3.1, can't log in at all", "iPhone 15 Pro 更新 iOS 18 之后支付页面一直报错 502",
    "太棒了👍👍 下次还来", "垃圾！！！再也不买了😡😡😡", "订单号 2026111600123 的发票金额不对，多开了 58.50 元",
    "您好，我于11月3日购买的洗衣机在安装后第二天就出现漏水的情况，联系了售后三次，每次都说会安排师傅上门，"
    "但是到现在一个星期过去了还是没有人来处理，家里地板都泡坏了，请尽快给我一个解决方案，否则我会向消协投诉。",
    "@客服小助手 #双十一翻车# 说好的保价呢？降价了不给退差价 [怒] //@某用户: 一样，太坑了",
    "建议支持按价格排序，另外搜索结果能不能过滤掉无货的商品", "店员爱答不理，很不专业", "包裹被放在门口丢了，快递员不接电话",
    "水果一半是烂的，不新鲜", "同样的东西比别家贵了五十块", "登录一直提示验证码错误", "刚下单就接到推销电话，信息泄露了",
    "合同条款和销售说的不一样", "客服小姐姐很耐心，谢谢", "想了解一下新品什么时候上", "维修承诺三天结果拖了一个月",
    "好", "差评", "一般般吧，没什么特别的", "东西收到了", "送货师傅很辛苦，天气这么冷还准时送到，给五星",
    "會員卡裡的積分莫名其妙被清零了，客服說是系統問題，但一直沒有補回來", "ＡＰＰ　登录失败　错误码　１００２",
]
# Calibrated ranges are widened by this factor: a text more extreme than the calibration set saturates later.
CALIBRATION_MARGIN = 1.25


def build_onnx_int8(folder: Path, state: dict | None, layers: Sequence[int], out: Path,
                    topic: TopicBranch | None = None) -> dict:
    """Export, fuse and quantise into the folder ``out``; returns build facts for the manifest.

    Weights are int8 per output column. Activations use **fixed, calibrated** scales (one per
    quantised tensor, from CALIBRATION_TEXTS through the fused fp32 graph, widened by
    CALIBRATION_MARGIN), not scales computed per batch: ONNX Runtime's dynamic quantisation takes
    each scale from the whole batch tensor, so a text's scores depended on its batch neighbours
    (sentiment up to 0.32 apart). With fixed scales a text gives the same scores alone or in any batch.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        raw, fused = Path(tmp) / "fp32.onnx", Path(tmp) / "fused.onnx"
        heads, hidden = _export_fp32(folder, state, layers, raw, topic)
        options = FusionOptions("bert")
        options.enable_skip_layer_norm = False
        options.enable_bias_skip_layer_norm = False
        opt = optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=hidden,
                             optimization_options=options)
        fusions = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(fused))
        # The quantiser logs every tensor through the root logger, and warns that the graph was not
        # "pre-processed" (shape inference for its own calibration, which we do not use): errors only.
        logging.disable(logging.WARNING)
        try:
            dynamic = Path(tmp) / "dynamic.onnx"
            # reduce_range: 7-bit weights. Without VNNI (AVX2 only) the int8 kernels add u8 x s8 products in
            # saturating 16-bit pairs, which clipped 8-bit weights' sums and moved scores (a mid-layer pool's cosine to
            # fp32 0.960-0.974 on an AVX2-only EPYC, 0.974-0.989 with 7 bits); with 7 bits nothing saturates, on every CPU.
            quantize_dynamic(
                str(fused), str(dynamic), per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            logging.disable(logging.NOTSET)
        static = Path(tmp) / "static.onnx"
        calibrated = fix_activation_scales(dynamic, fused, folder, static)
        matmuls = fuse_integer_matmuls(static, out / MODEL_FILE)
    return {"fusions": fusions, "activation_scales": "calibrated", "calibrated_tensors": calibrated,
            "matmul_integer_to_float": matmuls,
            "calibration_texts": len(CALIBRATION_TEXTS), "calibration_margin": CALIBRATION_MARGIN}


def _calibration_batches(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    config = json.loads((folder / "config.json").read_text())
    bos, eos = config.get("bos_token_id", 0), config.get("eos_token_id", 2)
    batches = []
    for prefix in ("", "query: "):
        for text in CALIBRATION_TEXTS:
            ids = [bos, *tok.encode(prefix + text, add_special_tokens=False).ids[:254], eos]
            arr = np.array([ids], dtype=np.int64)
            batches.append((arr, np.ones_like(arr)))
    return batches


def fix_activation_scales(dynamic: Path, fused: Path, folder: Path, out: Path) -> int:
    """Replace every DynamicQuantizeLinear of the dynamically quantised graph by a QuantizeLinear with
    a constant scale and zero point (uint8, asymmetric, as DynamicQuantizeLinear computes them) from
    the calibrated range of its input; returns how many tensors were calibrated."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(dynamic))
    nodes = [n for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    names = sorted({n.input[0] for n in nodes})
    # Run the fused fp32 graph with those tensors as outputs, one text at a time (no padding).
    probe = onnx.load(str(fused))
    known = {o.name for o in probe.graph.output}
    for name in names:
        if name not in known:
            probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=DISABLED_FUSIONS)
    lo = {n: 0.0 for n in names}
    hi = {n: 0.0 for n in names}
    for ids, mask in _calibration_batches(folder):
        values = session.run(names, {"input_ids": ids, "attention_mask": mask})
        for name, value in zip(names, values):
            lo[name] = min(lo[name], float(value.min()))
            hi[name] = max(hi[name], float(value.max()))
    kept = []
    for node in model.graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            kept.append(node)
            continue
        x = node.input[0]
        low, high = lo[x] * CALIBRATION_MARGIN, hi[x] * CALIBRATION_MARGIN
        scale = max(high - low, 1e-8) / 255.0
        zero = int(np.clip(round(-low / scale), 0, 255))
        q, scale_name, zp_name = node.output
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array(scale, dtype=np.float32), scale_name),
            numpy_helper.from_array(np.array(zero, dtype=np.uint8), zp_name),
        ])
        kept.append(helper.make_node("QuantizeLinear", [x, scale_name, zp_name], [q], name=node.name + "_static"))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    onnx.save(model, str(out))
    return len(names)


def fuse_integer_matmuls(static: Path, out: Path) -> int:
    """Run each quantised MatMul with its rescale and bias as one ``MatMulIntegerToFloat`` kernel.

    The quantiser writes MatMulInteger -> Cast -> Mul(activation scale x weight scales) -> Add(bias). ONNX
    Runtime fuses that chain itself only behind a DynamicQuantizeLinear; behind our fixed-scale QuantizeLinear
    the four kernels ran apart, each a pass over the activations. The fused kernel computes the same float
    expression (identical pools, checked when it was adopted) in one pass: the static graph ran ~1.5x faster
    at batch 64 on an AVX2-only EPYC and 1.29x on a Zen 4 EPYC with AVX-512 VNNI (840 vs 652 sentences/s,
    3.3x fp32). Returns how many MatMuls were fused.
    """
    import collections

    import onnx
    from onnx import helper

    model = onnx.load(str(static))
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    initializers = {i.name for i in graph.initializer}

    def only_consumer(tensor: str, op_type: str):
        users = consumers[tensor]
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    replaced, dropped = {}, set()
    for node in graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) != 4:
            continue
        a_q, b_q, a_zero, b_zero = node.input
        quantize = producer.get(a_q)
        cast = only_consumer(node.output[0], "Cast")
        rescale = cast and only_consumer(cast.output[0], "Mul")
        if quantize is None or quantize.op_type != "QuantizeLinear" or rescale is None:
            continue
        a_scale = quantize.input[1]
        scales = next(i for i in rescale.input if i != cast.output[0])
        product = producer.get(scales)  # Mul(activation scale, weight scales)
        if product is None or product.op_type != "Mul" or a_scale not in product.input:
            continue
        b_scale = next(i for i in product.input if i != a_scale)
        result, bias = rescale.output[0], ""
        add = only_consumer(result, "Add")
        if add is not None and any(i in initializers for i in add.input if i != result):
            bias, result = next(i for i in add.input if i != result), add.output[0]
            dropped.add(id(add))
        dropped |= {id(node), id(cast), id(rescale)} | ({id(product)} if len(consumers[scales]) == 1 else set())
        replaced[id(node)] = helper.make_node("MatMulIntegerToFloat", [a_q, b_q, a_scale, b_scale, a_zero, b_zero, bias],
                                              [result], name=node.name + "_to_float", domain="com.microsoft")
    kept = [replaced.get(id(n), n) for n in graph.node if id(n) in replaced or id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(out))
    return len(replaced)


def ensure_onnx_int8(model_dir: Path, folder: Path, state: dict | None, layers: Sequence[int],
                     base_version: str, topic: TopicBranch | None = None, keep_builds: int | None = None) -> Path:
    """The quantised ONNX file for this encoder, built when missing or corrupt; with ``topic``, its pools end
    with the topic branch's (``models.topic_branch``). With ``keep_builds``, only that many builds stay in the
    cache, the ones used last (``prune_onnx_builds``)."""
    key = export_key(base_version, state or {}, layers, topic)
    target = Path(model_dir) / "onnx" / key

    def check(full: bool) -> str | None:
        try:
            m = json.loads((target / MANIFEST).read_text())
            f = target / MODEL_FILE
            ok = f.stat().st_size == m["size"] and sha256_file(f) == m["sha256"]
        except (OSError, ValueError, KeyError):
            return "missing or unreadable"
        return None if ok else "checksum mismatch"

    def build(tmp: Path) -> dict:
        facts = build_onnx_int8(folder, state, layers, tmp, topic)
        f = tmp / MODEL_FILE
        facts.update({"key": key, "base": base_version, "layers": list(layers),
                      "topic_branch": topic.version if topic else None, "size": f.stat().st_size,
                      "sha256": sha256_file(f), "built_at": utc_stamp()})
        return facts

    built = ensure_built(target, check, build, MANIFEST, Path(model_dir))
    os.utime(built / MANIFEST)  # the manifest's mtime says when a build was last used
    if keep_builds is not None:
        with build_lock(Path(model_dir)):
            prune_onnx_builds(built.parent, keep_builds, built)
    return built / MODEL_FILE


def prune_onnx_builds(onnx_dir: Path, keep: int, current: Path) -> list[Path]:
    """Remove all but the ``keep`` builds used last (``current`` always stays); returns the removed ones.

    Every retrained or promoted model version gets a build of its own (≈ 120 MB), so without this the
    cache grows with every version ever served. A process that has loaded a removed build keeps its
    session (ONNX Runtime holds the graph in memory); loading that version again builds it again.
    Folders being built (``.build-*``) are not builds yet and are left alone.
    """
    builds = [p for p in onnx_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()]
    builds.sort(key=lambda p: (p == current, (p / MANIFEST).stat().st_mtime), reverse=True)
    removed = builds[max(keep, 1):]
    for path in removed:
        log.info("removing the ONNX build %s (not among the %d used last)", path, keep)
        shutil.rmtree(path, ignore_errors=True)
    return removed


class OnnxPooler:
    """ONNX Runtime session: (input_ids, attention_mask) → mean pools, (n, len(layers), hidden); ``layers``
    names what each pool is (layer numbers, and ``TOPIC`` last for a graph with the topic branch)."""

    def __init__(self, path: Path, layers: Sequence[int | str], num_threads: int | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(num_threads or 0)  # 0: one thread per physical core
        so.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: the enricher shares its cores with the
        # broker and the other stages, and spinning threads doubled its CPU per text there
        # (bench pipeline, docs/operations.md: 21-23 ms per text spinning, 12-13 ms not).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"],
                                            disabled_optimizers=DISABLED_FUSIONS)
        self.layers = list(layers)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (pools,) = self.session.run(None, {"input_ids": input_ids.astype(np.int64),
                                           "attention_mask": attention_mask.astype(np.int64)})
        return pools
