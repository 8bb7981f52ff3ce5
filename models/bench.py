"""Throughput of the full model (encoder + both heads), torch fp32 against the served ONNX int8 path, in one run.

Paths are timed interleaved (fp32, int8, fp32, int8, …) so that load from other processes on
a shared machine hits both alike; the report gives the median of the repeats and ratios.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

# Short customer-feedback sentences, the size of typical app reviews and social posts.
BENCH_SENTENCES = [
    "外卖送得太慢了，汤都洒了。",
    "客服态度很好，问题很快就解决了。",
    "价格有点贵，但是质量不错",
    "退款申请提交三天了还没到账",
    "APP一直闪退，登录不上",
    "快递员把包裹扔在门口就走了",
    "衣服尺码偏小，建议买大一号",
    "手机电池不耐用，半天就没电了",
    "希望增加夜间模式",
    "物流很快，第二天就到了，好评！",
    "会员自动续费没有提醒，要求退款",
    "我的账号被盗了，还收到很多骚扰电话",
    "菜品分量太少，味道一般",
    "酒店房间干净，服务周到",
    "打了五次客服电话都没人处理",
    "优惠券用不了，结账多收了钱",
]


def bench_texts(n: int) -> list[str]:
    return [BENCH_SENTENCES[i % len(BENCH_SENTENCES)] for i in range(n)]


def _int8_instructions() -> list[str]:
    """The x86 extensions that decide int8 speed (VNNI runs int8 dot products in one instruction)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return []
    return sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})


def _data_spec(spec) -> tuple[str, Path]:
    """``FILE`` (sentiment) or ``TASK:FILE``."""
    task, sep, file = str(spec).partition(":")
    return (task, Path(file)) if sep and task in ("sentiment", "issue_type") else ("sentiment", Path(spec))


def _rate(model, texts: list[str], batch_size: int) -> float:
    t = time.perf_counter()
    model.forward(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - t)


def run_bench(
    model_dir: Path | None,
    artifacts: Path | None = None,
    data: list[Path] | None = None,
    batch_sizes: list[int] = (1, 16, 64),
    n_sentences: int = 512,
    repeats: int = 3,
    max_length: int = 256,
    num_threads: int | None = None,
    max_batch_tokens: int | None = None,
    progress=None,
) -> dict:
    import torch

    from models.encoder import QUERY_PREFIX
    from models.evaluation import evaluate, read_eval_file
    from models.feedback_model import FeedbackModel

    if num_threads:
        torch.set_num_threads(num_threads)
    # onnx_int8 is the served path (quantize=True), fp32 the reference it is compared with.
    paths = {
        name: FeedbackModel.load(model_dir, artifacts, quantize=path, max_length=max_length, num_threads=num_threads,
                                 max_batch_tokens=max_batch_tokens)
        for name, path in (("fp32", "none"), ("onnx_int8", "onnx_int8"))
    }
    texts = bench_texts(n_sentences)
    tokens = [len(t) for t in paths["fp32"].encoder.token_ids(BENCH_SENTENCES)]
    for m in paths.values():  # warm-up
        m.forward(texts[:32], batch_size=16)
    rates: dict[str, dict[str, list[float]]] = {p: {str(b): [] for b in batch_sizes} for p in paths}
    for b in batch_sizes:
        sub = texts if b > 1 else texts[: max(32, n_sentences // 4)]
        for _ in range(repeats):
            for name, m in paths.items():
                rates[name][str(b)].append(_rate(m, sub, b))
                if progress:
                    progress(1)
    # What e5's "query: " prefix would cost the served path: the same model and batches, timed
    # interleaved with and without it (speed only; the tuned model reads texts without it).
    prefix_rates: dict[str, list[float]] = {"served": [], "query_prefix": []}
    served, own_prefix = paths["onnx_int8"].encoder, paths["onnx_int8"].encoder.prefix
    for _ in range(repeats):
        for name, prefix in (("served", own_prefix), ("query_prefix", QUERY_PREFIX)):
            served.prefix = prefix
            prefix_rates[name].append(_rate(paths["onnx_int8"], texts, max(batch_sizes)))
    served.prefix = own_prefix
    # Real reviews (the first data file) are longer and more varied than the bench sentences:
    # timed at the largest batch size, where padding and activation size weigh most.
    review_texts: list[str] = []
    if data:
        task, first = _data_spec(data[0])
        review_texts = [r.text for r in read_eval_file(first, task)][:256]
    review_rates: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(repeats if review_texts else 0):
        for name, m in paths.items():
            review_rates[name].append(_rate(m, review_texts, max(batch_sizes)))
    # Best of the repeats: on a shared machine the least-disturbed run is the code's speed.
    sps = {p: {b: round(max(v), 1) for b, v in d.items()} for p, d in rates.items()}
    med = {p: {b: round(statistics.median(v), 1) for b, v in d.items()} for p, d in rates.items()}
    report: dict = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "int8_instructions": _int8_instructions(),
            "torch": torch.__version__,
        },
        "model_version": paths["fp32"].version,
        "sentences": {"count": n_sentences, "distinct": len(BENCH_SENTENCES), "prefix": paths["fp32"].encoder.prefix,
                      "mean_tokens_with_prefix_and_specials": round(float(np.mean(tokens)) + 2, 1)},
        "max_length": max_length,
        "max_batch_tokens": max_batch_tokens,
        "repeats": repeats,
        "timing": "sentences/s of the full model (encoder + heads), best of the repeats; paths interleaved",
        "sentences_per_second": sps,
        "sentences_per_second_median": med,
        "all_runs": {p: {b: [round(x, 1) for x in v] for b, v in d.items()} for p, d in rates.items()},
        "speedup_vs_fp32": {
            p: {b: round(sps[p][b] / sps["fp32"][b], 2) for b in sps[p]} for p in sps if p != "fp32"
        },
        "speedup_vs_fp32_median": {
            p: {b: round(med[p][b] / med["fp32"][b], 2) for b in med[p]} for p in med if p != "fp32"
        },
    }
    report["query_prefix_cost"] = {
        "path": "onnx_int8", "batch_size": max(batch_sizes), "served_prefix": served.prefix,
        "sentences_per_second": {k: round(max(v), 1) for k, v in prefix_rates.items()},
        "speedup_median": round(statistics.median(a / b for a, b in zip(*prefix_rates.values())), 3),
    }
    if review_texts:
        best = {p: round(max(v), 1) for p, v in review_rates.items()}
        report["reviews"] = {
            "file": first.name, "count": len(review_texts), "batch_size": max(batch_sizes),
            "mean_tokens_with_prefix_and_specials": round(float(np.mean(
                [min(len(t), max_length - 2) for t in paths["fp32"].encoder.token_ids(review_texts)])) + 2, 1),
            "sentences_per_second": best,
            "speedup_vs_fp32": {p: round(best[p] / best["fp32"], 2) for p in best if p != "fp32"},
        }
    acc = {}
    for spec in data or []:
        task, file = _data_spec(spec)
        rows = read_eval_file(file, task)
        res = {name: evaluate(m, rows, task) for name, m in paths.items()}
        key = "binary_accuracy" if "binary_accuracy" in res["fp32"] else "accuracy"
        entry = {"task": task, "n": len(rows), "metric": key}
        for name, r in res.items():
            entry[name] = {key: r[key], "macro_f1": r["macro_f1"]}
        for name in paths:
            if name != "fp32":
                entry[f"{name}_change_points"] = round(100 * (res[name][key] - res["fp32"][key]), 2)
                entry[f"{name}_macro_f1_change_points"] = round(100 * (res[name]["macro_f1"] - res["fp32"]["macro_f1"]), 2)
        acc[Path(file).name] = entry
    report["accuracy"] = acc
    return report
