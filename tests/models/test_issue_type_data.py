"""The issue-type set: the self-written examples (written/*.jsonl) give the committed written_* files."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from models.taxonomy import ISSUE_TYPES

DATA = Path(__file__).resolve().parents[2] / "data" / "issue_type"


def _tool(name: str):
    """A build script of data/issue_type/tools, imported as a module."""
    sys.path.insert(0, str(DATA / "tools"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(DATA / "tools"))


@pytest.fixture(scope="module")
def tools():
    return _tool("build_dataset")


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
    assert {r.origin for r in load_issue_type_file(DATA / WEAK_EXTRA_FILE)} == {"real_extra", "written_extra"}
    keys = [dedup_key(r["text"]) for r in rows]
    assert not set(keys) & _held_out_keys() and len(set(keys)) == len(keys)


def _held_out_keys() -> set[str]:
    from models.data import dedup_key

    adjudicated = DATA.parent / "adjudicated"
    held = [*DATA.glob("*_heldout.jsonl"), *(adjudicated / "eval").glob("*.jsonl")]
    return {dedup_key(json.loads(line)["text"]) for p in held for line in p.read_text(encoding="utf-8").splitlines()
            if line.strip()}


def test_social_other_rows_are_rebuilt_from_their_sources_and_trained_on_by_default():
    """social_other_train.jsonl (stage 7): the build reproduces it; every row is `other`, new to the held-out
    sets, kept out of the primary-label calibration, and read by a default training run."""
    from models.data import dedup_key
    from models.training import NOT_CALIBRATING_ORIGINS, SOCIAL_OTHER, TrainConfig, select_rows
    from topics.settings import Settings

    shared = Settings().shared_data
    assert (shared / "weibo_emotion_virus.jsonl").is_file(), f"shared data not found at {shared}"
    build_social_other = _tool("build_social_other")
    committed = [json.loads(line) for line in (DATA / f"{SOCIAL_OTHER}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert build_social_other.build(shared) == committed
    assert len(committed) >= 600 and {(r["label"], tuple(r["labels"])) for r in committed} == {("other", ("other",))}
    assert {r["origin"] for r in committed} == {"real_social", "written_social"} <= NOT_CALIBRATING_ORIGINS
    keys = [dedup_key(r["text"]) for r in committed]
    assert not set(keys) & _held_out_keys() and len(set(keys)) == len(keys)
    # the commerce filter keeps posts about a product, shop or service out
    assert not any(build_social_other.COMMERCE.search(r["text"]) for r in committed)

    issue_train = select_rows(TrainConfig(shared_data=shared, quick=False)).issue_train
    social = [r for r in issue_train if r.origin in {"real_social", "written_social"}]
    assert [r.text for r in social] == [r["text"] for r in committed]


def test_second_annotation_gives_the_committed_real_labels():
    """Stage 8: every real row was annotated a second time, on its side of the split; the committed
    agreement, disagreements and final labels follow from the two annotations and the verdicts, and
    real_train / real_heldout carry the final labels."""
    tool = _tool("second_annotation")
    pool = tool.read_jsonl(tool.SECOND / "pool.jsonl")
    a, b, verdicts = (tool.annotations(name) for name in ("annotator_a", "annotator_b", "verdicts"))
    real = {split: tool.read_jsonl(DATA / f"real_{split}.jsonl") for split in ("train", "heldout")}
    split_of = {r["source"]: split for split, rows in real.items() for r in rows}
    assert sorted(p["source"] for p in pool) == sorted(split_of) and len(pool) == len(split_of) == 4226
    assert all(split_of[p["source"]] == p["split"] for p in pool)

    assert tool.agreement_reports(pool, a, b) == json.loads((tool.SECOND / "agreement.json").read_text(encoding="utf-8"))
    committed = tool.read_jsonl(tool.SECOND / "disagreements.jsonl")
    assert tool.disagreements(pool, a, b, tool.texts_by_source()) == committed
    assert [d["id"] for d in committed] == list(verdicts)
    for labels in verdicts.values():
        assert labels and set(labels) <= set(ISSUE_TYPES) and len(set(labels)) == len(labels)

    final = tool.final_labels(pool, a, b, verdicts)
    assert final == tool.read_jsonl(tool.SECOND / "final_labels.jsonl")
    by_source = {f["source"]: f["labels"] for f in final}
    for rows in real.values():
        assert all(r["labels"] == by_source[r["source"]] and r["label"] == r["labels"][0] for r in rows)
    # a disagreement without a verdict is an error, not a silent choice
    first = committed[0]["id"]
    with pytest.raises(SystemExit, match="no verdict"):
        tool.final_labels(pool, a, b, {k: v for k, v in verdicts.items() if k != first})


def test_build_applies_the_second_annotation_after_the_split(tools):
    """A row the second annotation covers takes its final labels; any other row is left as it was."""
    second = {r["source"]: r["labels"] for r in map(json.loads, (DATA / "second" / "final_labels.jsonl")
                                                     .read_text(encoding="utf-8").splitlines())}
    source = next(s for s, labels in second.items() if labels != ["other"])
    rows = [{"text": "t", "label": "other", "labels": ["other"], "source": source, "origin": "real"},
            {"text": "u", "label": "other", "labels": ["other"], "source": "nowhere.csv:0", "origin": "real"}]
    final = tools.with_second_annotation(rows, tools.second_annotation())
    assert final[0]["labels"] == second[source] and final[0]["label"] == second[source][0]
    assert final[1] == rows[1]
