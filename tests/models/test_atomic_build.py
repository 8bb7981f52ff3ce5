"""The build routine of the model directory: built once, checked, rebuilt when corrupt, never half-written."""

from __future__ import annotations

import json

import pytest

from models.atomic_build import ensure_built, file_checksums, sha256_file


def _routine(target, calls):
    def check(full):
        try:
            manifest = json.loads((target / "manifest.json").read_text())
        except (OSError, ValueError):
            return "missing manifest"
        return None if file_checksums(target).get("data.txt") == manifest["files"]["data.txt"] else "corrupt"

    def build(tmp):
        calls.append(tmp)
        (tmp / "data.txt").write_text("payload")
        return {"files": file_checksums(tmp)}

    return check, build


def test_builds_once_reuses_and_rebuilds_when_corrupt(tmp_path):
    target, calls = tmp_path / "thing", []
    check, build = _routine(target, calls)
    assert ensure_built(target, check, build, "manifest.json", tmp_path) == target
    assert (target / "data.txt").read_text() == "payload" and len(calls) == 1
    ensure_built(target, check, build, "manifest.json", tmp_path)
    assert len(calls) == 1  # reused
    (target / "data.txt").write_text("garbage")
    ensure_built(target, check, build, "manifest.json", tmp_path)
    assert len(calls) == 2 and (target / "data.txt").read_text() == "payload"
    assert sha256_file(target / "data.txt") == json.loads((target / "manifest.json").read_text())["files"]["data.txt"]["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".build.lock", "thing"]  # no temporary folders left


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    target = tmp_path / "thing"

    def build(tmp):
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ensure_built(target, lambda full: "missing", build, "manifest.json", tmp_path)
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == [".build.lock"]
