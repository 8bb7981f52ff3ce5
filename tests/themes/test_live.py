"""Live theme assignment: thresholds by centroid size, candidates, exact running means, assign/commit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from consumers.themes.calibration import threshold_for_size
from consumers.themes.live import LiveThemes

CURVE = [(1, 0.90), (10, 0.95)]


def ids():
    counter = itertools.count(1)
    return lambda: f"th-{next(counter)}"


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_thresholds_grow_with_centroid_size_and_are_clamped():
    live = LiveThemes([], CURVE)
    got = live.thresholds(np.array([1, 10, 100, int(round(10**0.5))]))
    assert got[:3].tolist() == pytest.approx([0.90, 0.95, 0.95])
    assert 0.92 < got[3] < 0.93
    assert threshold_for_size(CURVE, 1) == pytest.approx(0.90) and threshold_for_size(CURVE, 1000) == pytest.approx(0.95)


def test_close_messages_join_far_ones_start_candidates_and_members_promote():
    live = LiveThemes([], CURVE, promote_at=3, id_factory=ids())
    a, a2, a3 = unit(1, 0.1, 0), unit(1, 0.15, 0.02), unit(1, 0.05, 0.03)
    far = unit(0, 0, 1)
    assignment = live.assign(np.stack([a, a2, far, a3]))
    assert assignment.theme_ids == ["th-1", "th-1", "th-2", "th-1"]
    by_id = {t.theme_id: t for t in assignment.changed}
    assert (by_id["th-1"].size, by_id["th-1"].status) == (3, "active")
    assert (by_id["th-2"].size, by_id["th-2"].status) == (1, "candidate")
    assert np.allclose(by_id["th-1"].centroid, np.mean([a, a2, a3], axis=0), atol=1e-6)  # the exact running mean


def test_assign_changes_nothing_until_commit():
    live = LiveThemes([], CURVE, id_factory=ids())
    x = unit(1, 0, 0)
    first = live.assign(x[None])
    assert len(live) == 0
    retried = live.assign(x[None])  # a retry after a failed store write starts from the same state
    assert [t.size for t in retried.changed] == [1]
    live.commit(retried)
    assert [(t.theme_id, t.size) for t in live.themes()] == [(retried.theme_ids[0], 1)]
    assert first.theme_ids != retried.theme_ids or len(live) == 1


def test_the_nearest_eligible_theme_wins_and_state_reloads(store_url):
    from consumers.store.feedback_store import FeedbackStore

    live = LiveThemes([], [(1, 0.8)], id_factory=ids())
    live.commit(live.assign(np.stack([unit(1, 0, 0), unit(0, 1, 0)])))
    store = FeedbackStore.from_url(store_url)
    store.save_themes(live.themes())
    reloaded = LiveThemes(store.load_themes(), [(1, 0.8)], id_factory=ids())
    store.close()
    assert reloaded.assign(unit(0.3, 1, 0)[None]).theme_ids == ["th-2"]
    assert reloaded.assign(unit(1, 0.3, 0)[None]).theme_ids == ["th-1"]


def test_bad_shapes_are_refused():
    live = LiveThemes([], CURVE)
    live.commit(live.assign(unit(1, 0, 0)[None]))
    with pytest.raises(ValueError, match="dimension"):
        live.assign(np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="threshold_curve"):
        LiveThemes([], [])
