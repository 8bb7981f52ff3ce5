"""Which real sentiment rows train, which score (dev), and which are held out as an unseen domain."""

from __future__ import annotations

import dataclasses

import pytest

from models.data import SHARED_DATA_ENV, dedup_key, shared_data_dir
from models.training import TrainConfig, select_sentiment_rows


@pytest.fixture(scope="module")
def shared():
    from topics.settings import Settings

    path = Settings().shared_data
    assert (path / "chnsenticorp_train.csv").is_file(), f"training data missing in {path}"
    return path


def keys(rows):
    return {dedup_key(r.text) for r in rows}


def test_excluded_texts_and_held_out_domains_never_train(shared):
    train0, dev, _ = select_sentiment_rows(TrainConfig(shared_data=shared), set())
    assert not keys(train0) & keys(dev)
    assert {r.domain.split("/")[0] for r in train0} == {"hotel", "shopping", "waimai", "weibo"}
    banned = {dedup_key(r.text) for r in dev[:50]}
    train, dev2, held = select_sentiment_rows(TrainConfig(shared_data=shared, holdout_domains=["hotel"]), banned)
    assert not keys(train) & banned and not keys(dev2) & banned
    assert all(not r.domain.startswith("hotel") for r in train + dev2)
    # the drawn hotel rows are held out; 1,500 of them are scored
    assert len(held) == 1500 and all(r.domain.startswith("hotel") for r in held)


def test_row_cap_keeps_every_label(shared):
    train, _, _ = select_sentiment_rows(TrainConfig(shared_data=shared), set(), max_rows=3000)
    assert len({id(r) for r in train}) == 3000 and {r.label for r in train} == {"negative", "neutral", "positive"}


def test_the_config_is_not_changed_by_a_run():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().prefix = "query: "


def test_shared_data_is_passed_in_or_named_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(SHARED_DATA_ENV, raising=False)
    assert shared_data_dir(tmp_path) == tmp_path
    with pytest.raises(ValueError, match=SHARED_DATA_ENV):
        shared_data_dir(None)
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "x"))
    assert shared_data_dir(None) == tmp_path / "x"
