"""``feedback-miner eval``: strict input validation and the JSON last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.evaluation import EvalDataError, read_eval_file, sentiment_report
from pipelines.cli import app


def _write(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n",
                    encoding="utf-8")
    return path


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates stderr
        return CliRunner()


def test_malformed_lines_are_named_and_nothing_is_printed(tmp_path):
    data = _write(
        tmp_path / "bad.jsonl",
        [
            {"text": "送货太慢", "label": "negative"},
            "{not json",
            {"text": "很好", "label": "great"},
            "",
            {"label": "positive"},
            '["a", "list"]',
            {"text": "还行", "label": "neutral"},
        ],
    )
    res = _runner().invoke(app, ["eval", "--task", "sentiment", "--data", str(data)])
    assert res.exit_code != 0
    assert res.stdout.strip() == ""
    for n in ("2", "3", "5", "6"):
        assert n in res.stderr
    assert "line 1:" not in res.stderr and "line 7" not in res.stderr


def test_unknown_task_and_labels_rules(tmp_path):
    data = _write(tmp_path / "x.jsonl", [{"text": "a", "label": "logistics", "labels": ["logistics", "nope"]}])
    with pytest.raises(EvalDataError) as err:
        read_eval_file(data, "issue_type")
    assert list(err.value.errors) == [1]
    with pytest.raises(EvalDataError):
        read_eval_file(_write(tmp_path / "y.jsonl", [{"text": "a", "label": "positive", "labels": ["positive"]}]),
                       "sentiment")
    res = _runner().invoke(app, ["eval", "--task", "topic", "--data", str(data)])
    assert res.exit_code != 0 and res.stdout.strip() == ""


def test_empty_file_is_an_error(tmp_path):
    res = _runner().invoke(app, ["eval", "--task", "sentiment", "--data", str(_write(tmp_path / "e.jsonl", [""]))])
    assert res.exit_code != 0 and res.stdout.strip() == ""


def test_sentiment_report_binary_and_restricted():
    import numpy as np

    from models.evaluation import EvalRow

    rows = [EvalRow(i, "t", lab, None) for i, lab in enumerate(["negative", "positive", "positive", "negative"])]
    # 3-way argmax says neutral for row 2; restricted to {negative, positive} it is positive.
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.1, 0.5, 0.4], [0.3, 0.2, 0.5]])
    rep = sentiment_report(rows, probs)
    assert rep["accuracy"] == 0.5
    assert rep["binary_accuracy"] == 0.75
    assert rep["per_class"]["neutral"]["support"] == 0
    assert set(rep) >= {"task", "n", "accuracy", "macro_f1", "per_class"}


@pytest.mark.model
def test_eval_prints_one_json_object_last(tmp_path, model_dir):
    sent = _write(
        tmp_path / "s.jsonl",
        [
            {"text": "太难吃了，再也不会点这家", "label": "negative"},
            {"text": "送餐很快，味道很好，好评", "label": "positive"},
            {"text": "房间很脏，服务员态度差", "label": "negative"},
            {"text": "非常满意，下次还来", "label": "positive"},
        ],
    )
    res = _runner().invoke(app, ["eval", "--task", "sentiment", "--data", str(sent), "--model-dir", str(model_dir)])
    assert res.exit_code == 0, res.stderr
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last["task"] == "sentiment" and last["n"] == 4
    assert set(last) >= {"accuracy", "macro_f1", "per_class", "binary_accuracy"}
    for v in last["per_class"].values():
        assert set(v) == {"precision", "recall", "f1", "support"}
    assert last["binary_accuracy"] >= 0.75

    issue = _write(
        tmp_path / "i.jsonl",
        [
            {"text": "快递三天了还没到，物流太慢", "label": "logistics", "labels": ["logistics"]},
            {"text": "申请退款一周了还没到账，客服也不回复", "label": "refund_aftersales",
             "labels": ["refund_aftersales", "service_attitude"]},
            {"text": "APP一打开就闪退，根本没法用", "label": "technical"},
        ],
    )
    res = _runner().invoke(app, ["eval", "--task", "issue_type", "--data", str(issue), "--model-dir", str(model_dir)])
    assert res.exit_code == 0, res.stderr
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last["task"] == "issue_type" and last["n"] == 3
    assert "multilabel_micro_f1" in last and "binary_accuracy" not in last
    assert 0.0 <= last["macro_f1"] <= 1.0
