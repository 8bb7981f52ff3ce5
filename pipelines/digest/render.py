"""The digest as one self-contained HTML page (inline CSS and SVG) and as Markdown.

Every piece of feedback-derived text goes through ``html.escape``: a
``<script>`` in a complaint shows as text. The Markdown escapes it too,
because Markdown renderers pass raw HTML through.
"""

from __future__ import annotations

from collections import Counter
from html import escape

from consumers.themes.types import WeeklyTheme
from pipelines.digest.charts import SENTIMENT_COLOURS, paired_bars, stacked_columns
from pipelines.digest.model import Digest
from topics.schemas import ISSUE_TYPE_ZH, IssueType

SENTIMENTS = ("negative", "neutral", "positive")

_CSS = """
body{font-family:-apple-system,"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:24px auto;max-width:980px;color:#1f2933;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #e4e7eb;padding-bottom:4px}
.meta{color:#616e7c}.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #e4e7eb;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{font-size:22px;display:block}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
.tag{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;background:#eef2ff}.emerging{background:#ffe3e3;color:#a61e4d}.fading,.gone{background:#f1f3f5;color:#616e7c}
blockquote{margin:6px 0;padding:4px 10px;border-left:3px solid #3867d6;background:#f8f9fb;font-size:14px}.bad{color:#c92a2a}.good{color:#2b8a3e}.flat{color:#616e7c}
.first_week,.steady,.new{background:#eef2ff;color:#364fc7}.theme{border:1px solid #e4e7eb;border-radius:8px;padding:10px 14px;margin:10px 0}
.theme h3{margin:0 0 4px;font-size:16px}.facts{color:#3e4c59;font-size:14px;margin:4px 0}.bar{display:flex;height:10px;border-radius:5px;overflow:hidden;margin:6px 0;max-width:420px;background:#f1f3f5}
.bar span{display:block;height:100%}.neg{background:#e03131}.neu{background:#adb5bd}.pos{background:#2f9e44}
"""


def issue_label(value: str) -> str:
    try:
        return f"{ISSUE_TYPE_ZH[IssueType(value)]} {value}"
    except ValueError:
        return value


def growth_text(theme: WeeklyTheme, first_week: bool = False) -> str:
    if first_week or theme.status == "first_week":
        return "first week"
    if theme.previous_size == 0:
        return "new"
    change = (theme.size - theme.previous_size) / theme.previous_size
    return f"{change:+.0%}"


STATUS_TEXT = {"first_week": "first week", "new": "new", "emerging": "emerging", "steady": "steady", "fading": "fading", "gone": "gone"}
# An unflagged theme whose size moved this much says "up"/"down", not "steady" (its change did not pass
# the emerging/fading test, e.g. its nearest-centroid count disagrees, but +146 % is not steady).
UNFLAGGED_CHANGE = 0.5


def status_text(theme: WeeklyTheme) -> str:
    if theme.status == "steady" and theme.previous_size:
        change = (theme.size - theme.previous_size) / theme.previous_size
        if abs(change) >= UNFLAGGED_CHANGE:
            return "up" if change > 0 else "down"
    return STATUS_TEXT.get(theme.status, theme.status)


def polarity(theme: WeeklyTheme) -> str:
    """negative | positive | mixed: what the theme's messages mostly say (colours follow it)."""
    mix = theme.sentiment_mix
    total = sum(mix.values()) or 1
    if mix.get("negative", 0) / total >= 0.5:
        return "negative"
    if mix.get("positive", 0) / total >= 0.5:
        return "positive"
    return "mixed"


def change_class(theme: WeeklyTheme) -> str:
    """good / bad / flat for the week-over-week change: more praise is good, more complaints bad."""
    if theme.status == "first_week" or theme.size == theme.previous_size:
        return "flat"
    up = theme.size > theme.previous_size
    kind = polarity(theme)
    if kind == "mixed":
        return "flat"
    return "good" if up == (kind == "positive") else "bad"


def _sentiment_bar(mix: dict[str, int]) -> str:
    total = sum(mix.values())
    if not total:
        return ""
    spans = "".join(
        f"<span class=\"{css}\" style=\"width:{100 * mix.get(k, 0) / total:.1f}%\" title=\"{k} {mix.get(k, 0)}\"></span>"
        for k, css in (("negative", "neg"), ("neutral", "neu"), ("positive", "pos"))
    )
    return f"<div class=\"bar\">{spans}</div>"


def _split_text(mix: dict[str, int]) -> str:
    total = sum(mix.values()) or 1
    return " · ".join(f"{label} {mix.get(k, 0) / total:.0%}" for k, label in (("negative", "负面"), ("neutral", "中性"), ("positive", "正面")))


def _also(t: WeeklyTheme) -> str:
    """The theme's other terms, after those in its title."""
    shown = _theme_title(t)
    return " · ".join(k for k in t.keywords if k not in shown.split("、"))


def aspects_text(t: WeeklyTheme, top: int = 3) -> str:
    """How the theme's messages felt about each aspect they raise, most-mentioned first:
    物流 logistics 正面 12 · 负面 3 — praise of delivery inside a complaint theme shows here."""
    ranked = sorted(t.aspect_mix.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:top]
    parts = []
    for issue, counts in ranked:
        split = " · ".join(f"{label} {counts[k]}" for k, label in (("negative", "负面"), ("neutral", "中性"), ("positive", "正面"))
                           if counts.get(k))
        parts.append(f"{issue_label(issue)}: {split}")
    return "; ".join(parts)


def _tag(t: WeeklyTheme, first_week: bool) -> str:
    """The status tag beside a card's title; in a first week it is where the card says so (and only there)."""
    css, text = ("first_week", STATUS_TEXT["first_week"]) if first_week else (t.status, status_text(t))
    return f"<span class=\"tag {escape(css)}\">{escape(text)}</span>"


def _change_fact(t: WeeklyTheme, first_week: bool) -> str:
    """The facts line's week-over-week change; none in a first week (the tag says "first week")."""
    if first_week or t.status == "first_week":
        return ""
    change = f"{growth_text(t)} ({t.previous_size} → {t.size})"
    return f"<span class=\"{change_class(t)}\">{escape(change)}</span> · "


def theme_card(t: WeeklyTheme, first_week: bool = False) -> str:
    e = escape
    top_issues = ", ".join(f"{issue_label(k)} {v}" for k, v in sorted(t.issue_mix.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    aspects = aspects_text(t)
    also = _also(t)
    return "".join([
        f"<div class=\"theme\"><h3>{e(_theme_title(t))} {_tag(t, first_week)}</h3>",
        f"<p class=\"facts meta\">Also: {e(also)}</p>" if also else "",
        f"<p class=\"facts\"><b>{t.size}</b> messages · {_change_fact(t, first_week)}{e(_split_text(t.sentiment_mix))}</p>",
        _sentiment_bar(t.sentiment_mix),
        f"<p class=\"facts\">Issue types: {e(top_issues)}</p>" if top_issues else "",
        f"<p class=\"facts\">Aspects: {e(aspects)}</p>" if aspects else "",
        *(f"<blockquote>{e(q)}</blockquote>" for q in t.quotes),
        f"<small class=\"meta\">{e(t.theme_id)}</small></div>",
    ])


def _mix(counts: dict[str, int], keys=None) -> str:
    items = [(k, counts.get(k, 0)) for k in keys] if keys else sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v}" for k, v in items if v)


def _theme_title(theme: WeeklyTheme) -> str:
    return theme.label


POLARITY_GROUPS = (("negative", "Mostly complaints"), ("positive", "Mostly praise"), ("mixed", "Mixed"))


def _cards(d: Digest) -> list[str]:
    """All top themes' cards; with ``split_by_polarity`` under one heading per polarity (a view only)."""
    if not d.split_by_polarity:
        return ["<h2>All top themes</h2>", *(theme_card(t, d.first_week) for t in d.top_themes)]
    out = []
    for kind, heading in POLARITY_GROUPS:
        group = [t for t in d.top_themes if polarity(t) == kind]
        if group:
            out.append(f"<h2>{heading} ({len(group)})</h2>")
            out.extend(theme_card(t, d.first_week) for t in group)
    return out


def fading_mix(t: WeeklyTheme) -> tuple[dict[str, int], str]:
    """The sentiment split a fading entry shows and which week it is of: what faded (last week's messages)
    where known — a gone theme's mix is last week's — else this week's remnant, said so."""
    if t.previous_sentiment_mix:
        return t.previous_sentiment_mix, "last week"
    return t.sentiment_mix, "last week" if t.status == "gone" else "this week"


def _fading_class(t: WeeklyTheme) -> str:
    """Fewer complaints is good, less praise bad (by what faded)."""
    mix = fading_mix(t)[0]
    kind = polarity(WeeklyTheme(t.theme_id, t.week, 0, 0, t.centroid, [], [], mix, {}, {}))
    return "good" if kind == "negative" else "bad" if kind == "positive" else "flat"


def trend_with_data(trend: list[tuple[str, Counter]]) -> list[tuple[str, Counter]]:
    """The trend from the first week with messages on: weeks before the store had any data are "no data yet",
    not zero feedback. A zero week after that stays (a real zero); the current week always stays."""
    first = next((i for i, (_, counts) in enumerate(trend) if sum(counts.values())), len(trend) - 1)
    return trend[first:]


FIRST_WEEK_NOTE = "First week: there is no previous week to compare with, so no theme is marked emerging or fading."
CHANGES_HEADING = "Emerging and fading themes"


def _changes_html(d: Digest) -> list[str]:
    """Emerging and fading themes; a first week has neither, and says why once, in one section."""
    if d.first_week:
        return [f"<h2>{CHANGES_HEADING}</h2>", f"<p>{escape(FIRST_WEEK_NOTE)}</p>"]
    e = escape
    parts = ["<h2>Emerging themes</h2>"]
    if not d.emerging:
        parts.append("<p>No emerging theme this week.</p>")
    parts.extend(theme_card(t) for t in d.emerging)
    parts.append("<h2>Fading themes</h2>")
    if d.fading:
        parts.append("<ul>" + "".join(
            f"<li><b>{e(_theme_title(t))}</b>: {t.previous_size} → {t.current_estimate if t.status == 'gone' else t.size} messages"
            f" <span class=\"{_fading_class(t)}\">({e(_split_text(fading_mix(t)[0]))} {fading_mix(t)[1]})</span>"
            + (f"<blockquote>{e(t.quotes[0])}</blockquote>" if t.quotes else "") + "</li>" for t in d.fading) + "</ul>")
    else:
        parts.append("<p>No fading theme this week.</p>")
    return parts


def render_html(d: Digest) -> str:
    e = escape
    issues = sorted(set(d.issue_volume) | set(d.previous_issue_volume), key=lambda k: (-d.issue_volume.get(k, 0), k))
    compare = not d.first_week  # a first week has no last week: no "last week" bars of zero
    issue_chart = paired_bars("Volume by issue type", [(issue_label(k), d.issue_volume.get(k, 0), d.previous_issue_volume.get(k, 0)) for k in issues],
                              compare=compare)
    trend_chart = stacked_columns("Sentiment trend", [(w, dict(c)) for w, c in trend_with_data(d.sentiment_trend)], SENTIMENTS, SENTIMENT_COLOURS)
    theme_chart = paired_bars("Top themes, week over week", [(_theme_title(t), t.size, t.previous_size) for t in d.top_themes], compare=compare)
    neg = d.sentiment_trend[-1][1].get("negative", 0) if d.sentiment_trend else 0
    parts = [
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">",
        f"<title>Feedback digest {e(d.week)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Customer feedback digest · {e(d.week)}</h1>",
        f"<p class=\"meta\">Generated {e(d.generated_at.strftime('%Y-%m-%d %H:%M UTC'))} by feedback-miner</p>",
        "<div class=\"cards\">",
        f"<div class=\"card\"><b>{d.total}</b>messages ({'first week' if d.first_week else f'last week {d.previous_total}'})</div>",
        f"<div class=\"card\"><b>{len(d.themes)}</b>themes ({d.unclustered} messages in none)</div>",
        # "0 emerging" in a first week would read as a finding; nothing can emerge without a last week.
        "" if d.first_week else f"<div class=\"card\"><b>{len(d.emerging)}</b>emerging themes</div>",
        f"<div class=\"card\"><b>{(neg / d.total if d.total else 0):.0%}</b>negative</div>",
        "</div>",
        f"<h2>Volume by issue type</h2>{issue_chart}",
        f"<h2>Sentiment trend</h2>{trend_chart}",
        f"<h2>Top themes</h2>{theme_chart}",
    ]
    parts.extend(f"<p class=\"meta\"><b>{e(n)}</b></p>" for n in d.notes)
    parts.extend(_changes_html(d))
    parts.extend(_cards(d))
    parts.append("</body></html>")
    return "\n".join(parts)


def _md(text: str) -> str:
    """Escape for Markdown: HTML first, then the characters that would start formatting."""
    text = escape(" ".join(str(text).split()))
    for ch in "\\`*_[]|#":
        text = text.replace(ch, "\\" + ch)
    return text


def _changes_markdown(d: Digest) -> list[str]:
    """As ``_changes_html``: a first week's one section and note, else the emerging and fading sections."""
    if d.first_week:
        return ["", f"## {CHANGES_HEADING}", "", _md(FIRST_WEEK_NOTE)]
    lines = ["", "## Emerging themes", ""]
    if not d.emerging:
        lines.append("No emerging theme this week.")
    for t in d.emerging:
        lines += [f"### {_md(_theme_title(t))} ({growth_text(t)}, {t.size} messages; {_md(_split_text(t.sentiment_mix))})", ""]
        lines += [f"> {_md(q)}" for q in t.quotes] + [""]
    lines += ["", "## Fading themes", ""]
    lines += [f"- {_md(_theme_title(t))}: {t.previous_size} → {t.current_estimate if t.status == 'gone' else t.size}"
              f" ({_md(_split_text(fading_mix(t)[0]))} {fading_mix(t)[1]})" for t in d.fading] or ["No fading theme this week."]
    return lines


def _top_theme_row(t: WeeklyTheme, first_week: bool) -> str:
    """A row of the top-themes table; in a first week its change column alone says "first week"."""
    title = _md(_theme_title(t)) if first_week else f"{_md(_theme_title(t))} ({status_text(t)})"
    change = growth_text(t, first_week) if first_week else f"{growth_text(t)} ({t.previous_size}→{t.size})"
    return f"| {title} | {t.size} | {change} | {_md(_split_text(t.sentiment_mix))} |"


def render_markdown(d: Digest) -> str:
    lines = [
        f"# Customer feedback digest · {d.week}",
        "",
        f"- Messages: **{d.total}** ({'first week' if d.first_week else f'last week {d.previous_total}'})",
        f"- Themes: **{len(d.themes)}** ({d.unclustered} messages in none)" + ("" if d.first_week else f", emerging: **{len(d.emerging)}**"),
        "",
        "## Volume by issue type",
        "",
        # A first week has no last week: no column of zeros (as the HTML chart has no "last week" bars).
        "| issue type | this week |" if d.first_week else "| issue type | this week | last week |",
        "|---|---:|" if d.first_week else "|---|---:|---:|",
    ]
    for k in sorted(set(d.issue_volume) | set(d.previous_issue_volume), key=lambda k: (-d.issue_volume.get(k, 0), k)):
        last = "" if d.first_week else f" {d.previous_issue_volume.get(k, 0)} |"
        lines.append(f"| {_md(issue_label(k))} | {d.issue_volume.get(k, 0)} |{last}")
    lines += ["", "## Sentiment trend", "", "| week | negative | neutral | positive |", "|---|---:|---:|---:|"]
    lines += [f"| {w} | " + " | ".join(str(c.get(s, 0)) for s in SENTIMENTS) + " |" for w, c in trend_with_data(d.sentiment_trend)]
    lines += ["", "## Top themes", "", "| theme | messages | vs last week | sentiment |", "|---|---:|---|---|"]
    lines += [_top_theme_row(t, d.first_week) for t in d.top_themes]
    lines += [f"- {_md(n)}" for n in d.notes]
    lines += _changes_markdown(d)
    lines += ["", "## Theme cards", ""]
    groups = [(h, [t for t in d.top_themes if polarity(t) == k]) for k, h in POLARITY_GROUPS] if d.split_by_polarity else [(None, d.top_themes)]
    for heading, group in groups:
        if heading and group:
            lines += [f"### {heading} ({len(group)})", ""]
        for t in group:
            issues = ", ".join(f"{issue_label(k)} {v}" for k, v in sorted(t.issue_mix.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
            lines += [f"#### {_md(_theme_title(t))} ({t.size} messages, {growth_text(t, d.first_week)})" if heading else
                      f"### {_md(_theme_title(t))} ({t.size} messages, {growth_text(t, d.first_week)})", "",
                      f"- Sentiment: {_md(_split_text(t.sentiment_mix))}", f"- Issue types: {_md(issues)}",
                      *([f"- Aspects: {_md(aspects_text(t))}"] if t.aspect_mix else []), ""]
            lines += [f"> {_md(q)}" for q in t.quotes] + [""]
    return "\n".join(lines) + "\n"
