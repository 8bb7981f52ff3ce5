"""Inline SVG charts (no scripts, no external files); every label is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

SENTIMENT_COLOURS = {"negative": "#d1495b", "neutral": "#9aa5b1", "positive": "#2e9e6b"}
THIS_WEEK, LAST_WEEK = "#3867d6", "#b8c6ee"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def paired_bars(title: str, rows: Sequence[tuple[str, int, int]], width: int = 760, label_w: int = 250, compare: bool = True) -> str:
    """Horizontal bars per label: this week (dark) over last week (light). Labels are clipped to fit.
    ``compare`` False (a first week: there is no last week): this week's bars only, no "last week" key or zeros."""
    bar_h, gap = 11, 8
    rows = [(label if len(label) <= 24 else label[:23] + "…", now, before) for label, now, before in rows]
    height = max(1, len(rows)) * (2 * bar_h + gap) + 30
    top = max([max(a, b) for _, a, b in rows] + [1])
    scale = (width - label_w - 60) / top
    body = [f'<rect x="{label_w}" y="4" width="10" height="10" fill="{THIS_WEEK}"/><text x="{label_w + 14}" y="13">this week</text>']
    if compare:
        body.append(f'<rect x="{label_w + 90}" y="4" width="10" height="10" fill="{LAST_WEEK}"/><text x="{label_w + 104}" y="13">last week</text>')
    for i, (label, now, before) in enumerate(rows):
        y = 24 + i * (2 * bar_h + gap)
        body.append(f'<text x="{label_w - 6}" y="{y + bar_h + 3}" text-anchor="end">{escape(label)}</text>')
        body.append(f'<rect x="{label_w}" y="{y}" width="{now * scale:.1f}" height="{bar_h}" fill="{THIS_WEEK}"/>')
        body.append(f'<text x="{label_w + now * scale + 4:.1f}" y="{y + bar_h - 1}">{now}</text>')
        if compare:
            body.append(f'<rect x="{label_w}" y="{y + bar_h}" width="{before * scale:.1f}" height="{bar_h}" fill="{LAST_WEEK}"/>')
            body.append(f'<text x="{label_w + before * scale + 4:.1f}" y="{y + 2 * bar_h - 1}" fill="#667">{before}</text>')
    return _svg(width, height, body, title)


def stacked_columns(title: str, columns: Sequence[tuple[str, dict[str, int]]], keys: Sequence[str], colours: dict[str, str], width: int = 640, height: int = 220) -> str:
    """One column per period, stacked by key (as shares of the column, with the total on top)."""
    left, bottom, top_pad = 40, 40, 24
    plot_h = height - bottom - top_pad
    n = max(1, len(columns))
    col_w = min(70, (width - left - 20) / n * 0.6)
    step = (width - left - 20) / n
    body = []
    for k, key in enumerate(keys):
        body.append(f'<rect x="{left + k * 100}" y="4" width="10" height="10" fill="{colours[key]}"/><text x="{left + k * 100 + 14}" y="13">{escape(key)}</text>')
    body.append(f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" stroke="#889"/>')
    for i, (label, counts) in enumerate(columns):
        total = sum(counts.get(k, 0) for k in keys)
        x = left + i * step + (step - col_w) / 2
        y = top_pad + plot_h
        for key in keys:
            h = plot_h * counts.get(key, 0) / total if total else 0
            y -= h
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{col_w:.1f}" height="{h:.1f}" fill="{colours[key]}"><title>{escape(key)}: {counts.get(key, 0)}</title></rect>')
        body.append(f'<text x="{x + col_w / 2:.1f}" y="{top_pad + plot_h + 16}" text-anchor="middle">{escape(label)}</text>')
        body.append(f'<text x="{x + col_w / 2:.1f}" y="{top_pad + plot_h + 30}" text-anchor="middle" fill="#667">n={total}</text>')
    return _svg(width, height, body, title)
