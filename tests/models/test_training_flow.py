"""The Prefect training flow, on a tiny slice of the real data (``quick``)."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def shared():
    # Training reads the labelled sets of the setting shared_data (../shared/data: CI has them beside the clone).
    from topics.settings import Settings

    path = Settings().shared_data
    assert (path / "waimai_10k.csv").is_file(), f"training data missing in {path}"
    return path


def test_training_flow_writes_artifacts_and_evaluates(tmp_path, model_dir, shared):
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from pipelines.flows.training import training_flow

    out = tmp_path / "artifacts"
    result = training_flow(out=str(out), quick=True, cache_dir=str(tmp_path / "cache"), model_dir=str(model_dir),
                           shared_data=str(shared))
    for name in ("config.json", "encoder_top.safetensors", "heads.safetensors", "metrics.json", "MODEL_CARD.md",
                 "issue_ngrams.json", "sentiment_ngrams.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["issue_type"]["real_heldout"]["n"] > 0
    # the served (blended) sentiment and the encoder head alone, on the same dev rows
    assert metrics["sentiment"]["dev"]["n"] == metrics["sentiment"]["dev_encoder_head_only"]["n"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["sentiment_blend"] == 0.7
    assert config["prefix"] == "" and metrics["config"]["prefix"] == ""  # tuned without e5's query prefix
    evals = result["eval"]
    assert evals and all(set(r) >= {"task", "n", "accuracy", "macro_f1", "per_class"} for r in evals.values())

    # Deterministic: the same seed gives the same heads.
    from safetensors.numpy import load_file

    from models.training import TrainConfig, train

    again = tmp_path / "again"
    train(TrainConfig(out=again, quick=True, shared_data=shared, cache_dir=tmp_path / "cache", model_dir=model_dir,
                      progress=False))
    a, b = load_file(str(out / "heads.safetensors")), load_file(str(again / "heads.safetensors"))
    assert all(abs(a[k] - b[k]).max() < 1e-3 for k in a)
    assert sorted(p.name for p in (tmp_path / "eval").iterdir())[0].startswith("sentiment_dev_")


def test_skip_finetune_keeps_the_encoder_and_its_sentiment_head(tmp_path, model_dir, shared):
    from safetensors.numpy import load_file

    from models.feedback_model import ARTIFACTS_DIR, ENCODER_FILE, HEADS_FILE, unpack_tuned_layers
    from models.training import TrainConfig, train

    out = tmp_path / "refit"
    metrics = train(TrainConfig(out=out, quick=True, skip_finetune=True, shared_data=shared,
                                cache_dir=tmp_path / "cache", model_dir=model_dir, progress=False))
    shipped_heads, heads = load_file(str(ARTIFACTS_DIR / HEADS_FILE)), load_file(str(out / HEADS_FILE))
    assert all((shipped_heads[k] == heads[k]).all() for k in shipped_heads if k.startswith("sentiment."))
    # The heads are fitted on the encoder as it is served: with the prefix it was tuned with.
    from models.encoder import QUERY_PREFIX

    shipped_config = json.loads((ARTIFACTS_DIR / "config.json").read_text())
    assert json.loads((out / "config.json").read_text())["prefix"] == shipped_config.get("prefix", QUERY_PREFIX)
    assert set(heads) >= {"issue.weight", "primary.weight", "primary.bias", "sentiment_lexical.weight"}
    a = unpack_tuned_layers(load_file(str(ARTIFACTS_DIR / ENCODER_FILE)))
    b = unpack_tuned_layers(load_file(str(out / ENCODER_FILE)))
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]).max() < 1e-6 for k in a)
    # The encoder was not retrained: its run's record is carried over, and so are its sentiment
    # figures, marked as the encoder run's, since today's (quick) split differs from the one it
    # was trained against; no dev files are written for that split.
    shipped = json.loads((ARTIFACTS_DIR / "metrics.json").read_text())
    carried = shipped.get("encoder_run", shipped)["sentiment"]
    assert metrics["sentiment"] == {f"{k}_encoder_run": v for k, v in carried.items()}
    assert metrics["encoder_run"]["config"] == shipped.get("encoder_run", shipped)["config"]
    assert not (tmp_path / "eval").exists()
    assert "--skip-finetune" in (out / "MODEL_CARD.md").read_text()
