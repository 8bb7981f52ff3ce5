"""``bench model``: one run times torch fp32 against the served ONNX int8 path and reports the int8 accuracy change."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.model


def test_bench_reports_every_path_and_the_accuracy_change(tmp_path, model_dir):
    from models.bench import run_bench
    from models.encoder import QUERY_PREFIX
    from models.feedback_model import ARTIFACTS_DIR, CONFIG_FILE

    rows = [("物流太慢了，差评", "negative"), ("质量很好，推荐购买", "positive"), ("客服不回复，很失望", "negative"),
            ("味道不错，下次还来", "positive")]
    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows))
    report = run_bench(model_dir, data=[data], batch_sizes=[1, 8], n_sentences=16, repeats=1)

    paths = {"fp32", "onnx_int8"}
    assert set(report["sentences_per_second"]) == paths
    assert all(set(v) == {"1", "8"} and min(v.values()) > 0 for v in report["sentences_per_second"].values())
    assert set(report["speedup_vs_fp32"]) == paths - {"fp32"}
    served_prefix = json.loads((ARTIFACTS_DIR / CONFIG_FILE).read_text()).get("prefix", QUERY_PREFIX)
    cost = report["query_prefix_cost"]
    assert cost["served_prefix"] == served_prefix == report["sentences"]["prefix"]
    assert cost["batch_size"] == 8 and min(cost["sentences_per_second"].values()) > 0
    acc = report["accuracy"]["dev.jsonl"]
    assert acc["n"] == 4 and acc["metric"] == "binary_accuracy"
    assert acc["onnx_int8_change_points"] == pytest.approx(
        100 * (acc["onnx_int8"]["binary_accuracy"] - acc["fp32"]["binary_accuracy"]), abs=0.01)
    assert report["reviews"]["count"] == 4
