"""Which real sentiment rows train, which score (dev), and which are held out as an unseen domain."""

from __future__ import annotations

import pytest

from models.data import dedup_key, default_shared_data_dir
from models.training import TrainConfig, select_sentiment_rows


@pytest.fixture(scope="module")
def shared():
    path = default_shared_data_dir()
    assert (path / "chnsenticorp_train.csv").is_file(), f"training data missing in {path}"
    return path


def keys(rows):
    return {dedup_key(r.text) for r in rows}


def test_extra_rows_join_training_and_leave_dev_unchanged(shared):
    drawn_train, drawn_dev, _ = select_sentiment_rows(TrainConfig(shared_data=shared), set())
    train, dev, held = select_sentiment_rows(TrainConfig(shared_data=shared, all_sentiment_rows=True,
                                                         max_sentiment_rows=100_000), set())
    # Dev rows are the same rows either way, so models trained with and without extras compare.
    assert [r.text for r in dev] == [r.text for r in drawn_dev]
    assert len(train) > len(drawn_train) + 20000 and keys(train) >= keys(drawn_train)
    assert not keys(train) & keys(dev) and not held
    assert {r.domain.split("/")[0] for r in train} == {"hotel", "shopping", "waimai", "weibo"}


def test_excluded_texts_and_held_out_domains_never_train(shared):
    _, dev, _ = select_sentiment_rows(TrainConfig(shared_data=shared), set())
    banned = {dedup_key(r.text) for r in dev[:50]}
    train, dev2, held = select_sentiment_rows(
        TrainConfig(shared_data=shared, holdout_domains=["hotel"], all_sentiment_rows=True), banned)
    assert not keys(train) & banned and not keys(dev2) & banned
    assert all(not r.domain.startswith("hotel") for r in train + dev2)
    # every hotel row, drawn or extra, is held out; 1,500 of them are scored
    assert len(held) == 1500 and all(r.domain.startswith("hotel") for r in held)


def test_row_cap_keeps_every_label(shared):
    train, _, _ = select_sentiment_rows(TrainConfig(shared_data=shared, max_sentiment_rows=3000), set())
    assert len(train) == 3000 and {r.label for r in train} == {"negative", "neutral", "positive"}
