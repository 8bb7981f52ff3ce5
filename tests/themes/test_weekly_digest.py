"""Two synthetic weeks through the real enricher into a real store, then the weekly themes and digest."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest

from consumers.stage import process_batch
from consumers.store.feedback_store import FeedbackStore
from pipelines.digest.build import run_digest
from tests.enricher.factories import enricher, message
from tests.themes.synthetic import WEEK1, WEEK1_PLAN, WEEK2, WEEK2_PLAN, week_events
from topics.schemas import DigestAnnouncement
from topics.settings import Settings

pytestmark = pytest.mark.model


def ingest(store: FeedbackStore, model, events) -> None:
    stage = enricher(store, model)
    for start in range(0, len(events), 16):
        result = process_batch(stage, [message(e, i) for i, e in enumerate(events[start : start + 16])])
        assert not result.dead_letters


def themes_by_origin(members: dict[str, str]) -> dict[str, Counter]:
    """For each theme, where its messages came from (event ids are <week>-<origin>-<n>)."""
    out: dict[str, Counter] = {}
    for event_id, theme_id in members.items():
        out.setdefault(theme_id, Counter())[event_id.split("-")[1]] += 1
    return out


def majority_theme(members: dict[str, str], origin: str) -> str:
    counts = Counter(t for e, t in members.items() if e.split("-")[1] == origin)
    return counts.most_common(1)[0][0]


@pytest.fixture
def two_weeks(store_url, feedback_model, tmp_path):
    settings = Settings(store={"url": store_url}, data_dir=tmp_path)
    store = FeedbackStore.from_url(store_url)
    ingest(store, feedback_model, week_events(WEEK1, WEEK1_PLAN, 1, "w46"))
    ingest(store, feedback_model, week_events(WEEK2, WEEK2_PLAN, 2, "w47"))
    announced: list[DigestAnnouncement] = []
    clock = lambda: datetime(2026, 11, 23, 6, tzinfo=timezone.utc)  # noqa: E731
    first = run_digest(settings, "2026-W46", store=store, announce=announced.append, clock=clock)
    second = run_digest(settings, "2026-W47", store=store, announce=announced.append, clock=clock)
    yield settings, store, first, second, announced
    store.close()


def test_a_theme_keeps_its_id_and_a_new_one_is_emerging(two_weeks):
    _, store, first, second, _ = two_weeks
    w46, w47 = store.week_members("2026-W46"), store.week_members("2026-W47")
    assert len(w46) + first.digest.unclustered == 34 and len(w47) + second.digest.unclustered == 48

    delivery = majority_theme(w46, "late_delivery")
    assert majority_theme(w47, "late_delivery") == delivery
    crash = majority_theme(w46, "app_crash")
    assert majority_theme(w47, "app_crash") == crash

    by_id = {t.theme_id: t for t in second.digest.themes}
    assert by_id[delivery].previous_size > 0 and not by_id[delivery].emerging
    # The injected product problem forms new theme(s) of its own (the model may split it by symptom).
    origins = themes_by_origin(w47)
    power = [t for t, c in origins.items() if c["power_bank"] >= 3]
    assert power and sum(origins[t]["power_bank"] for t in power) >= 10
    old_ids = {t.theme_id for t in first.digest.themes}
    emerging = {t.theme_id for t in second.digest.emerging}
    for theme_id in power:
        assert origins[theme_id]["power_bank"] >= 0.8 * sum(origins[theme_id].values())
        assert theme_id not in old_ids and by_id[theme_id].previous_size == 0
        # A new theme is emerging from the minimum volume on (and then significant against last week's 0).
        floor = Settings().enrichment.weekly.emerging_min_volume
        assert (theme_id in emerging) == (by_id[theme_id].size >= floor)
        assert by_id[theme_id].status == ("emerging" if by_id[theme_id].size >= floor else "new")
        assert all("充电宝" in q or "移动电源" in q for q in by_id[theme_id].quotes)
        assert sum(by_id[theme_id].sentiment_mix.values()) == by_id[theme_id].size
    biggest = max(power, key=lambda t: by_id[t].size)
    assert biggest in emerging
    assert {"充电宝", "鼓包", "移动电源"} & set(by_id[biggest].keywords)
    assert not {delivery, crash} & emerging
    # The first week has nothing to compare with: nothing is emerging or fading, every theme says so.
    assert not first.digest.emerging and not first.digest.fading
    assert {t.status for t in first.digest.themes} == {"first_week"}


def test_snapshots_are_stored_and_a_rebuild_is_idempotent(two_weeks):
    settings, store, _, second, announced = two_weeks
    stored = {t.theme_id: t.size for t in store.load_week("2026-W47")}
    assert {t.theme_id: t.size for t in second.digest.themes}.items() <= stored.items()

    again = run_digest(settings, "2026-W47", store=store)
    assert {t.theme_id: t.size for t in store.load_week("2026-W47")} == stored
    assert [t.theme_id for t in again.digest.emerging] == [t.theme_id for t in second.digest.emerging]

    assert [a.week for a in announced] == ["2026-W46", "2026-W47"]
    assert announced[1].feedback_count == 48
    assert announced[1].emerging_themes[0].theme_id == second.digest.emerging[0].theme_id
    html = second.html_path.read_text(encoding="utf-8")
    md = second.markdown_path.read_text(encoding="utf-8")
    assert second.html_path.parent == settings.data_dir / "digests"
    assert "2026-W47" in html and "<svg" in html and "<script" not in html
    assert "## Emerging themes" in md and second.digest.emerging[0].quotes[0][:8] in md


def test_every_weekly_setting_reaches_the_digest_rules() -> None:
    from dataclasses import fields

    from consumers.themes.weekly import WeeklyRules
    from pipelines.digest.build import weekly_rules
    from topics.settings import WeeklyThemeSettings

    defaults = WeeklyThemeSettings()
    shared = {f.name for f in fields(WeeklyRules)} & set(WeeklyThemeSettings.model_fields)
    assert {"burst_test", "burst_significance", "story_scan", "significance"} <= shared
    changed = {}
    for name in shared:
        value = getattr(defaults, name)
        if isinstance(value, bool):
            changed[name] = not value
        elif isinstance(value, (int, float)):
            changed[name] = value / 2 if isinstance(value, float) else value + 1
    rules = weekly_rules(WeeklyThemeSettings(**changed))
    assert {name: getattr(rules, name) for name in changed} == changed
    assert rules.story_coherence == defaults.merge_similarity
