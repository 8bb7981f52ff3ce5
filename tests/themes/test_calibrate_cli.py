"""``feedback-miner themes calibrate``: the live curve at the live precision, the weekly similarities at best separation."""

from __future__ import annotations

import csv
import json

import numpy as np
from typer.testing import CliRunner

import pipelines.themes_calibration as calibration
from pipelines.cli import app


def _write(path, rows, header):
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_calibrate_command_prints_settings_with_the_live_curve_at_precision(tmp_path, monkeypatch):
    words = {"书籍": "这本书", "外卖": "这份外卖", "酒店": "这家酒店"}
    _write(tmp_path / "online_shopping_9_cats.csv", [["书籍", lab, f"{words['书籍']}第{i}次{'好' if lab else '差'}评"] for lab in (0, 1) for i in range(60)], ["cat", "label", "review"])
    _write(tmp_path / "waimai_10k.csv", [[lab, f"{words['外卖']}第{i}次{'好' if lab else '差'}评"] for lab in (0, 1) for i in range(60)], ["label", "review"])
    _write(tmp_path / "chnsenticorp_train.csv", [[lab, f"{words['酒店']}第{i}次{'好' if lab else '差'}评"] for lab in (0, 1) for i in range(60)], ["label", "review"])

    def fake_embed(settings, texts):
        rng = np.random.default_rng(0)
        topics = sorted({(next(k for k, w in words.items() if t.startswith(w)), t.endswith("好评")) for t in texts})
        base = rng.normal(size=(len(topics), 32))
        v = np.stack([base[topics.index((next(k for k, w in words.items() if t.startswith(w)), t.endswith("好评")))] for t in texts])
        v = v + rng.normal(scale=1.0, size=v.shape)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    monkeypatch.setattr(calibration, "embed", fake_embed)
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(app, ["themes", "calibrate", "--data-dir", str(tmp_path), "--per-topic", "55", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["live_precision"] == 0.9 and report["data"]["topics"] == 6
    best = dict(map(tuple, report["distributions"]["live_curve_best_separation"]))
    live = dict(map(tuple, report["live_curve"]))
    assert set(live) == set(best) and live != best  # the live curve is the precision one, not the best separation
    assert json.loads(report["settings_env"]["FEEDBACK_MINER_ENRICHMENT__LIVE__THRESHOLD_CURVE"]) == report["live_curve"]
