"""The fast CPU path: the encoder exported to ONNX, fused and int8-quantised for ONNX Runtime.

Built once per (base model, tuned weights, pooled layers, onnxruntime version) into the model
directory, like the converted encoder folder (``models.atomic_build``): torch export (eager attention, so ONNX
Runtime's transformer optimiser can fuse attention, embedding + LayerNorm and bias + GELU),
then dynamic int8 quantisation of every MatMul and the attention projections with one scale
per weight column. The graph returns the mean pools of the requested layers, so pooling
costs nothing extra in Python.

Speed against torch fp32 depends on the CPU's int8 instructions; ``bench model`` measures it in
every run (benchmarks/model.json). Last measured (2026-11-30, 2 cores, short sentences at batch
64, models/artifacts/METHOD.md): 4.2× on an AVX-512 VNNI CPU, 1.83× on an AVX2-only one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.atomic_build import ensure_built, sha256_file, utc_stamp
from models.pooling import mean_pool

EXPORT_VERSION = "1"
MODEL_FILE = "encoder-int8.onnx"
MANIFEST = "manifest.json"
# ONNX Runtime's fused SkipLayerNormalization kernel is ~4× slower per element than a plain
# Add + LayerNormalization on these CPUs (profiled: 21 % of the int8 run time vs 4 %).
DISABLED_FUSIONS = ["SkipLayerNormFusion"]


def export_key(base_version: str, state: dict, layers: Sequence[int]) -> str:
    """Identifies one build: base model, tuned weights, pooled layers and the onnxruntime version."""
    import onnxruntime

    h = hashlib.sha256(f"{EXPORT_VERSION}|{base_version}|{list(layers)}|{onnxruntime.__version__}".encode())
    for name in sorted(state):
        h.update(name.encode())
        h.update(np.ascontiguousarray(state[name].detach().numpy() if hasattr(state[name], "detach")
                                      else state[name]).tobytes())
    return h.hexdigest()[:16]


def _export_fp32(folder: Path, state: dict | None, layers: Sequence[int], path: Path) -> tuple[int, int]:
    import warnings

    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(str(folder), add_pooling_layer=False, attn_implementation="eager")
    if state:
        model.load_state_dict(state, strict=False)
    model.eval()
    layers = list(layers)

    class Pools(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids, attention_mask):
            res = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=torch.zeros_like(input_ids), output_hidden_states=True)
            return torch.stack([mean_pool(res.hidden_states[k], attention_mask) for k in layers], dim=1)

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


def build_onnx_int8(folder: Path, state: dict | None, layers: Sequence[int], out: Path) -> dict:
    """Export, fuse and quantise into the folder ``out``; returns build facts for the manifest."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        raw, fused = Path(tmp) / "fp32.onnx", Path(tmp) / "fused.onnx"
        heads, hidden = _export_fp32(folder, state, layers, raw)
        options = FusionOptions("bert")
        options.enable_skip_layer_norm = False
        options.enable_bias_skip_layer_norm = False
        opt = optimize_model(str(raw), model_type="bert", num_heads=heads, hidden_size=hidden,
                             optimization_options=options)
        fusions = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(fused))
        logging.disable(logging.INFO)  # the quantiser logs every tensor through the root logger
        try:
            quantize_dynamic(
                str(fused), str(out / MODEL_FILE), per_channel=True, weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            logging.disable(logging.NOTSET)
    return {"fusions": fusions}


def ensure_onnx_int8(model_dir: Path, folder: Path, state: dict | None, layers: Sequence[int],
                     base_version: str) -> Path:
    """The quantised ONNX file for this encoder, built when missing or corrupt."""
    key = export_key(base_version, state or {}, layers)
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
        facts = build_onnx_int8(folder, state, layers, tmp)
        f = tmp / MODEL_FILE
        facts.update({"key": key, "base": base_version, "layers": list(layers), "size": f.stat().st_size,
                      "sha256": sha256_file(f), "built_at": utc_stamp()})
        return facts

    return ensure_built(target, check, build, MANIFEST, Path(model_dir)) / MODEL_FILE


class OnnxPooler:
    """ONNX Runtime session: (input_ids, attention_mask) → mean pools, (n, len(layers), hidden)."""

    def __init__(self, path: Path, layers: Sequence[int], num_threads: int | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(num_threads or 0)  # 0: one thread per physical core
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"],
                                            disabled_optimizers=DISABLED_FUSIONS)
        self.layers = list(layers)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (pools,) = self.session.run(None, {"input_ids": input_ids.astype(np.int64),
                                           "attention_mask": attention_mask.astype(np.int64)})
        return pools
