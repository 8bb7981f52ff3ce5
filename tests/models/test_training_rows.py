"""Which real sentiment rows train, which score (dev), and which are held out as an unseen domain."""

from __future__ import annotations

import pytest

from models.data import dedup_key, default_shared_data_dir, load_written_sentiment
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
    # The cap counts distinct rows; written ones are then repeated on top of it.
    assert len({id(r) for r in train}) == 3000 and {r.label for r in train} == {"negative", "neutral", "positive"}


def test_written_reviews_train_only_and_can_be_held_out(shared):
    from models.training import WRITTEN_SENTIMENT_DIR

    written = load_written_sentiment(WRITTEN_SENTIMENT_DIR)
    assert len(written) >= 1000 and {r.label for r in written} == {"negative", "positive"}
    cfg = TrainConfig(shared_data=shared, written_sentiment=True, written_sentiment_repeat=3)
    train, dev, _ = select_sentiment_rows(cfg, set())
    real_train, real_dev, _ = select_sentiment_rows(TrainConfig(shared_data=shared), set())
    # Figures stay on real rows: the dev split is the same with or without the written reviews.
    assert [r.text for r in dev] == [r.text for r in real_dev]
    in_train = [r for r in train if r.origin == "written"]
    assert len(in_train) == 3 * len({r.text for r in in_train}) and len({r.text for r in in_train}) > 0.95 * len(written)
    assert len(train) - len(in_train) == len(real_train)
    # A written domain can be held out like a real one (to measure the gain on an unseen domain).
    train2, _, held2 = select_sentiment_rows(
        TrainConfig(shared_data=shared, written_sentiment=True, holdout_domains=["written/hotel"]), set())
    assert not any(r.domain == "written/hotel" for r in train2)
    assert held2 and all(r.domain == "written/hotel" for r in held2)


def test_a_malformed_written_review_names_its_line(tmp_path):
    (tmp_path / "x.jsonl").write_text(
        '{"text": "很好", "label": "positive", "domain": "app"}\n{"text": "一般", "label": "neutral", "domain": "app"}\n',
        encoding="utf-8")
    with pytest.raises(ValueError, match=r"x\.jsonl:2"):
        load_written_sentiment(tmp_path)
