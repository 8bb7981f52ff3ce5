"""The promotion registry without the model: the decision rule, the pointer, the log, rollback chains."""

from __future__ import annotations

import json
import shutil

import pytest

from models.feedback_model import ARTIFACTS_DIR, artifacts_digest
from models.promotion import (
    LOG,
    POINTER,
    SHIPPED,
    RegistryError,
    current_artifacts,
    current_version,
    decide,
    promote,
    read_log,
    rollback,
    version_dir,
)


def test_decide_promotes_unless_a_shared_figure_drops_by_more_than_the_margin():
    assert decide({"a": 0.80, "b": 0.5}, {"a": 0.805, "b": 0.4}, 0.01).promoted
    worse = decide({"a": 0.78, "b": 0.9}, {"a": 0.80, "b": 0.4}, 0.01)
    assert not worse.promoted and worse.worse == ["a"] and "a 0.7800 < 0.8000" in worse.reason
    assert decide({"a": 0.79}, {"a": 0.80}, 0.01).promoted  # exactly the margin is allowed
    assert not decide({"a": 1.0}, {"b": 1.0}, 0.01).promoted  # nothing to compare on
    forced = decide({"a": 0.1}, {"a": 0.9}, 0.01, force=True)
    assert forced.promoted and forced.forced and forced.worse == ["a"]
    assert worse.rows() == [("a", 0.78, 0.8, -0.02), ("b", 0.9, 0.4, 0.5)]


def _candidate(tmp_path, name: str, tweak: str):
    """A copy of the shipped artifacts with a different config (so a different digest)."""
    folder = tmp_path / name
    shutil.copytree(ARTIFACTS_DIR, folder)
    config = json.loads((folder / "config.json").read_text())
    config["note"] = tweak
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_promote_reject_and_rollback_chain(tmp_path):
    registry = tmp_path / "registry"
    shipped_digest = artifacts_digest(ARTIFACTS_DIR)
    assert current_artifacts(registry) == ARTIFACTS_DIR and current_version(registry) is None
    with pytest.raises(RegistryError, match="nothing to roll back"):
        rollback(registry, "ops")

    a, b, c = (_candidate(tmp_path, n, n) for n in "abc")
    first = promote(registry, a, decide({"f": 0.8}, {"f": 0.8}, 0.01), "ann", {"sets": ["x"]})
    assert first["action"] == "promote" and first["previous"] == SHIPPED
    va = current_version(registry)
    assert current_artifacts(registry) == version_dir(registry, va) and artifacts_digest(version_dir(registry, va)) == artifacts_digest(a)
    second = promote(registry, b, decide({"f": 0.81}, {"f": 0.8}, 0.01), "ann")
    vb = current_version(registry)
    assert second["previous"] == va and vb != va
    rejected = promote(registry, c, decide({"f": 0.5}, {"f": 0.81}, 0.01), "ann")
    assert rejected["action"] == "reject" and "version" not in rejected and current_version(registry) == vb
    assert "## Promotion" in (c / "MODEL_CARD.md").read_text() and "rejected over" in (c / "MODEL_CARD.md").read_text()
    assert f"promoted over {va}" in (version_dir(registry, vb) / "MODEL_CARD.md").read_text()

    assert rollback(registry, "bob") == {**read_log(registry)[-1], "from": vb, "to": va}
    assert current_version(registry) == va
    assert rollback(registry, "bob")["to"] == SHIPPED
    assert current_artifacts(registry) == ARTIFACTS_DIR and not (registry / POINTER).exists()
    assert [e["action"] for e in json.loads((registry / LOG).read_text())] == [
        "promote", "promote", "reject", "rollback", "rollback"]
    assert artifacts_digest(ARTIFACTS_DIR) == shipped_digest  # the shipped artifacts were never written


def test_a_pointer_to_a_missing_version_is_a_clear_error(tmp_path):
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / POINTER).write_text("20990101T000000Z-deadbeef\n")
    with pytest.raises(RegistryError, match="holds no artifacts"):
        current_artifacts(registry)
