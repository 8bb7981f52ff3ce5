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
