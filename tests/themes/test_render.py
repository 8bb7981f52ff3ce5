"""The digest page: escaping, self-containment, and what headless Chromium actually shows."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import pytest

from consumers.themes.types import WeeklyTheme
from pipelines.digest.build import write_digest
from pipelines.digest.model import Digest
from pipelines.digest.render import render_html, render_markdown

SCRIPT = "<script>document.title='pwned'</script>"


def theme(theme_id: str, size: int, before: int, keywords: list[str], quotes: list[str], emerging=False, status="steady") -> WeeklyTheme:
    return WeeklyTheme(
        theme_id=theme_id, week="2026-W47", size=size, previous_size=before, centroid=np.zeros(4, np.float32),
        keywords=keywords, quotes=quotes, sentiment_mix={"negative": size - 1, "neutral": 1}, issue_mix={"logistics": size},
        channel_mix={"app": size}, emerging=emerging, fading=False, status=status,
    )


@pytest.fixture
def digest() -> Digest:
    delivery = theme("th-delivery", 40, 35, ["外卖", "骑手", "超时"], ["外卖送了一个半小时才到，饭菜全凉了"])
    power = theme("th-power", 12, 0, ["充电宝", "鼓包"], [f"充电宝用了两天就鼓包了{SCRIPT}", "充电宝 & 充电器 <b>发烫</b>"], emerging=True, status="emerging")
    return Digest(
        week="2026-W47",
        generated_at=datetime(2026, 11, 23, 6, tzinfo=timezone.utc),
        total=52,
        previous_total=35,
        unclustered=0,
        sentiment_trend=[("2026-W46", Counter(negative=30, neutral=5)), ("2026-W47", Counter(negative=45, neutral=5, positive=2))],
        issue_volume=Counter(logistics=40, product_quality=12),
        previous_issue_volume=Counter(logistics=35),
        channel_volume=Counter(app=52),
        themes=[delivery, power],
        emerging=[power],
        fading=[],
    )


def test_feedback_text_is_escaped_everywhere(digest):
    html = render_html(digest)
    assert "<script" not in html.lower() and "<b>发烫" not in html
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in html
    assert "充电宝 &amp; 充电器 &lt;b&gt;发烫&lt;/b&gt;" in html
    md = render_markdown(digest)
    assert "<script" not in md and "&lt;script&gt;" in md


def test_the_page_is_self_contained(digest):
    html = render_html(digest)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<link" not in html and html.count("<svg") == 3


def test_chromium_renders_the_digest(digest, chromium, tmp_path):
    html_path, _ = write_digest(digest, tmp_path / "digests")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = tmp_path / "digest.png"
    subprocess.run([str(chromium), *flags, f"--screenshot={shot}", "--window-size=1100,2200", html_path.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run([str(chromium), *flags, "--dump-dom", html_path.as_uri()], check=True, capture_output=True, timeout=120, text=True).stdout
    # The injected script did not run (the title is intact) and shows as text.
    assert "<title>Feedback digest 2026-W47</title>" in dom and "pwned</title>" not in dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "Emerging themes" in dom and "充电宝、鼓包" in dom and "Volume by issue type" in dom
    (tmp_path.parent / "last-digest.png").write_bytes(shot.read_bytes())  # kept for a look by a person


def test_theme_cards_show_how_each_aspect_was_felt(digest):
    from consumers.themes.weekly import aspect_mix

    aspects = [{"logistics": "positive", "product_quality": "negative"}, {"logistics": "positive"}, {}, {"logistics": "negative"}]
    digest.themes[0].aspect_mix = aspect_mix(aspects, [0, 1, 2, 3])
    assert digest.themes[0].aspect_mix == {"logistics": {"positive": 2, "negative": 1}, "product_quality": {"negative": 1}}
    from pipelines.digest.render import _md, issue_label

    html, markdown = render_html(digest), render_markdown(digest)
    line = f"{issue_label('logistics')}: 负面 1 · 正面 2; {issue_label('product_quality')}: 负面 1"
    assert f"Aspects: {line}" in html and f"- Aspects: {_md(line)}" in markdown
    # A theme without recorded aspects (older rows) shows no aspects line.
    assert html.count("Aspects:") == 1


def test_a_first_week_shows_no_last_week_of_zeros(digest):
    digest.first_week = True
    html, md = render_html(digest), render_markdown(digest)
    assert "last week" not in html.split("<h2>Emerging and fading themes</h2>")[0]  # cards and charts: no zero bars for last week
    assert "messages (first week)" in html and "(first week)" in md and "(0→12)" not in md
    # Nor a "last week" column of zeros in the Markdown table, nor an "emerging" count that nothing could reach.
    assert "| issue type | this week |\n" in md and "last week |" not in md.split("## Sentiment trend")[0]
    assert "emerging themes</div>" not in html and "emerging:" not in md
    digest.first_week = False
    html, md = render_html(digest), render_markdown(digest)
    assert "| issue type | this week | last week |" in md and "emerging themes</div>" in html and "emerging:" in md


def first_week_digest(digest: Digest) -> Digest:
    """``digest`` as the store's first week makes it: every theme ``first_week``, nothing flagged."""
    for t in digest.themes:
        t.status, t.emerging, t.previous_size = "first_week", False, 0
    digest.first_week, digest.emerging, digest.previous_total = True, [], 0
    return digest


def test_a_first_week_says_so_once_in_one_section(digest):
    from pipelines.digest.render import FIRST_WEEK_NOTE, _md

    d = first_week_digest(digest)
    html, md = render_html(d), render_markdown(d)
    assert html.count(FIRST_WEEK_NOTE) == 1 and md.count(_md(FIRST_WEEK_NOTE)) == 1
    assert "nothing to compare with yet" not in html + md
    assert "<h2>Emerging and fading themes</h2>" in html and "## Emerging and fading themes" in md
    assert "Emerging themes</h2>" not in html and "Fading themes</h2>" not in html
    assert "## Emerging themes" not in md and "## Fading themes" not in md


def test_a_first_week_card_says_first_week_once(digest):
    d = first_week_digest(digest)
    cards = render_html(d).split('<div class="theme">')[1:]
    assert len(cards) == 2 and all(card.count("first week") == 1 for card in cards)
    assert all('<span class="tag first_week">first week</span>' in card for card in cards)
    md = render_markdown(d)
    # Markdown: one card heading and one top-themes row per theme, each saying it once.
    rows = [line for line in md.splitlines() if line.startswith(("### ", "| 外卖", "| 充电宝"))]
    assert len(rows) == 4 and all(line.count("first week") == 1 for line in rows)


def test_a_week_with_a_last_week_keeps_its_emerging_and_fading_sections(digest):
    html, md = render_html(digest), render_markdown(digest)
    assert "<h2>Emerging themes</h2>" in html and "<h2>Fading themes</h2>" in html and "No fading theme this week." in html
    assert "## Emerging themes" in md and "## Fading themes" in md
    assert "Emerging and fading themes" not in html + md and "First week" not in html + md
    # Its cards still show the change beside the size.
    assert '<span class="bad">+14% (35 → 40)</span>' in html and "| 外卖、骑手 (steady) | 40 | +14% (35→40) |" in md


def test_the_trend_starts_at_the_first_week_with_messages(digest):
    empty = Counter()
    digest.sentiment_trend = [("2026-W42", empty), ("2026-W43", Counter()), ("2026-W44", Counter(negative=3)),
                              ("2026-W45", Counter()), ("2026-W46", Counter(neutral=2)), ("2026-W47", Counter(negative=45))]
    html, md = render_html(digest), render_markdown(digest)
    for shown in (html, md):
        assert "2026-W42" not in shown and "2026-W43" not in shown
        assert all(week in shown for week in ("2026-W44", "2026-W45", "2026-W46", "2026-W47"))
    assert "| 2026-W45 | 0 | 0 | 0 |" in md  # a week without messages after the first one is a real zero
    assert html.count("n=0") == 1


def test_the_trend_keeps_the_current_week_even_when_empty():
    from pipelines.digest.render import trend_with_data

    assert trend_with_data([("2026-W46", Counter()), ("2026-W47", Counter())]) == [("2026-W47", Counter())]
    assert trend_with_data([]) == []


def test_a_fading_entry_shows_how_what_faded_felt_and_says_which_week():
    from pipelines.digest.render import fading_mix

    faded = theme("th-battery", 14, 66, ["电池", "死机"], ["电池不耐用"], status="fading")
    faded.fading = True
    faded.sentiment_mix = {"positive": 10, "negative": 4}  # what is left this week
    assert fading_mix(faded) == ({"positive": 10, "negative": 4}, "this week")
    faded.previous_sentiment_mix = {"negative": 63, "positive": 3}  # what faded
    assert fading_mix(faded) == ({"negative": 63, "positive": 3}, "last week")
    d = Digest(week="2026-W47", generated_at=datetime(2026, 11, 23, 6, tzinfo=timezone.utc), total=14, previous_total=66, unclustered=0,
               sentiment_trend=[], issue_volume=Counter(), previous_issue_volume=Counter(), channel_volume=Counter(),
               themes=[faded], emerging=[], fading=[faded])
    html = render_html(d)
    # Fewer complaints is good news: green, with last week's split.
    assert '<span class="good">(负面 95% · 中性 0% · 正面 5% last week)</span>' in html
    assert "负面 95% · 中性 0% · 正面 5% last week" in render_markdown(d)


def test_quotes_do_not_repeat_one_text_with_other_punctuation():
    from consumers.themes.weekly import representative_quotes

    texts = ["支付页面报错，耽误我买东西。", "支付页面报错，耽误我买东西", "支付页面报错，耽误我买东西！", "付款页面白屏"]
    vectors = np.array([[1.0, 0.0], [0.99, 0.1], [0.98, 0.2], [0.9, 0.3]], dtype=np.float32)
    assert representative_quotes(texts, vectors, np.array([1.0, 0.0]), 3, 120) == ["支付页面报错，耽误我买东西。", "付款页面白屏"]


def test_quotes_skip_a_near_duplicate_and_keep_distinct_texts():
    from consumers.themes.weekly import bigram_jaccard, representative_quotes

    cold = "外卖送了一个半小时才到,饭菜全凉了,骑手还不接电话。"
    also_cold = "外卖送了一个半小时才到,饭菜都凉了,骑手还不接电话!"
    late = "外卖送餐慢 又是超时一小时"
    short = "外卖又晚了四十分钟,而且少送了一份饮料。"
    assert bigram_jaccard(cold, also_cold) >= 0.6 > max(bigram_jaccard(cold, late), bigram_jaccard(cold, short), bigram_jaccard(late, short))
    vectors = np.array([[1.0, 0.0], [0.99, 0.1], [0.98, 0.2], [0.9, 0.3]], dtype=np.float32)
    quotes = representative_quotes([cold, also_cold, late, short], vectors, np.array([1.0, 0.0]), 3, 120)
    assert quotes == [cold, late, short]
    # Fewer distinct texts than asked for: fewer quotes, no filler.
    assert representative_quotes([cold, also_cold, late], vectors[:3], np.array([1.0, 0.0]), 3, 120) == [cold, late]
    # The bar comes from the settings; at 0.9 the pair is two texts.
    assert representative_quotes([cold, also_cold], vectors[:2], np.array([1.0, 0.0]), 3, 120, 0.9) == [cold, also_cold]
