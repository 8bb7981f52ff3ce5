"""The issue-type set: the self-written examples (written/*.jsonl) give the committed written_* files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from models.taxonomy import ISSUE_TYPES

DATA = Path(__file__).resolve().parents[2] / "data" / "issue_type"


@pytest.fixture(scope="module")
def tools():
    sys.path.insert(0, str(DATA / "tools"))
    try:
        import build_dataset
    finally:
        sys.path.remove(str(DATA / "tools"))
    return build_dataset


def test_written_examples_are_valid_jsonl(tools):
    rows = tools.read_written()
    assert len(rows) == 1394
    assert all(labels and set(labels) <= set(ISSUE_TYPES) and text.strip() for _, text, labels in rows)
    assert tools.TAXONOMY == list(ISSUE_TYPES) and set(tools.CODE.values()) == set(ISSUE_TYPES)


def test_written_examples_split_into_the_committed_files(tools):
    train, held = tools.split(tools.written_rows(), frac=0.15, seed=11, pinned=tools.pinned_train())
    for name, rows in (("written_train.jsonl", train), ("written_heldout.jsonl", held)):
        committed = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]
        assert rows == committed, name


def test_weak_class_extra_rows_train_only_and_never_held_out():
    """weak_extra_train.jsonl (stage 6): valid rows, read by training, none of them a held-out text."""
    from models.data import dedup_key
    from models.data import load_issue_type_file
    from models.training import ISSUE_HELDOUT, NOT_CALIBRATING_ORIGINS, WEAK_EXTRA_FILE

    rows = [json.loads(line) for line in (DATA / WEAK_EXTRA_FILE).read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 300
    for r in rows:
        assert r["labels"] and r["label"] == r["labels"][0] and set(r["labels"]) <= set(ISSUE_TYPES)
        assert len(set(r["labels"])) == len(r["labels"]) and r["text"].strip()
        assert r["origin"] in NOT_CALIBRATING_ORIGINS and (r["source"] == "written") == (r["origin"] == "written_extra")
    assert WEAK_EXTRA_FILE.removesuffix(".jsonl") not in ISSUE_HELDOUT
    # read as extra training rows (TrainConfig.extra_issue_rows), they keep their origins
    assert {r.origin for r in load_issue_type_file(DATA / WEAK_EXTRA_FILE)} == set(NOT_CALIBRATING_ORIGINS)
    adjudicated = DATA.parent / "adjudicated"
    held = [*DATA.glob("*_heldout.jsonl"), *(adjudicated / "eval").glob("*.jsonl")]
    held_keys = {dedup_key(json.loads(line)["text"]) for p in held for line in p.read_text(encoding="utf-8").splitlines()
                 if line.strip()}
    keys = [dedup_key(r["text"]) for r in rows]
    assert not set(keys) & held_keys and len(set(keys)) == len(keys)
