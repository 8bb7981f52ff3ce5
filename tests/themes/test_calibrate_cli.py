"""``feedback-miner themes calibrate``: the live curve at the live precision, the weekly similarities at best separation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
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


@pytest.mark.model
def test_the_centre_is_the_mean_topic_branch_vector_and_names_the_branch(tmp_path, monkeypatch):
    """--write-center measures the mean raw theme embedding of the calibration reviews with the production model
    and says which branch it belongs to (a centre of another branch spreads nothing)."""
    from consumers.themes import representation
    from pipelines.enrichment import production_model
    from topics.settings import Settings

    texts = {"书籍": "这本书写得很好，内容充实", "外卖": "外卖送到的时候都凉了", "酒店": "酒店房间干净，服务周到"}
    _write(tmp_path / "online_shopping_9_cats.csv", [["书籍", lab, f"{texts['书籍']}，第{i}次买"] for lab in (0, 1) for i in range(3)], ["cat", "label", "review"])
    _write(tmp_path / "waimai_10k.csv", [[lab, f"{texts['外卖']}，第{i}次点"] for lab in (0, 1) for i in range(3)], ["label", "review"])
    _write(tmp_path / "chnsenticorp_train.csv", [[lab, f"{texts['酒店']}，第{i}次住"] for lab in (0, 1) for i in range(3)], ["label", "review"])
    monkeypatch.setattr(representation, "center_path", lambda: tmp_path / "center.json")
    representation.theme_center.cache_clear()
    settings = Settings()
    try:
        assert calibration.measure_center(settings, tmp_path, per_topic=3)["reviews"] == 18
        doc = json.loads((tmp_path / "center.json").read_text(encoding="utf-8"))
        model = production_model(settings)
        assert model.encoder.topic_branch.version in doc["what"]
        reviews, _ = calibration.load_labelled_reviews(tmp_path, 3)
        raw = np.stack([p.theme_embedding for p in model.predict(reviews)])
        assert np.allclose(doc["center"], raw.mean(0), atol=1e-5)
        # Centred by it, the reviews lose the direction they share: their mean shrinks.
        assert np.linalg.norm(representation.topic_vectors(raw).mean(0)) < np.linalg.norm(raw.mean(0))
    finally:
        representation.theme_center.cache_clear()
