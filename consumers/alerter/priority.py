"""Per-message priority P1–P4 from the rules, with the reasons behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.alerter.rules import Rules, TermHit, TermMatcher
from topics.schemas import EnrichedFeedback, ISSUE_TYPE_ZH, Priority, SentimentLabel


@dataclass(frozen=True)
class Assessment:
    priority: Priority
    reasons: list[str] = field(default_factory=list)
    # Rule categories that fired (safety, legal, media, vip, social_reach, negative).
    categories: list[str] = field(default_factory=list)
    hits: list[TermHit] = field(default_factory=list)


def is_vip(event: EnrichedFeedback, rules: Rules) -> bool:
    tier = (event.customer.tier or "").strip().lower()
    return bool(tier) and tier in rules.vip_tiers


def _int_signal(event: EnrichedFeedback, name: str) -> int:
    value = event.signals.get(name)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _social_reach(event: EnrichedFeedback, rules: Rules) -> str | None:
    if event.channel.value != "social":
        return None
    reposts, likes, mentions = (_int_signal(event, n) for n in ("reposts", "likes", "mention_count"))
    if reposts >= rules.social_min_reposts:
        return f"转发 {reposts}"
    if likes >= rules.social_min_likes:
        return f"点赞 {likes}"
    if mentions >= rules.social_min_mentions:
        return f"@提及 {mentions}"
    return None


def assess(event: EnrichedFeedback, matcher: TermMatcher) -> Assessment:
    """Score one message: the first rule level that applies wins; every reason is kept."""
    rules = matcher.rules
    text = f"{event.subject}\n{event.text}" if event.subject else event.text
    hits = matcher.find(text)
    reasons: list[str] = []
    categories: list[str] = []
    live = [h for h in hits if not h.negated]
    for category in rules.categories:
        terms = sorted({h.term for h in live if h.category == category.name})
        if terms:
            categories.append(category.name)
            reasons.append(f"{category.zh}: {'、'.join(terms)}")
    for hit in hits:
        if hit.negated:
            reasons.append(f"已排除否定表述: {hit.negator}…{hit.term}")
    negative = event.sentiment.label == SentimentLabel.negative
    score = event.sentiment.score
    if categories and rules.ignore_when_positive and event.sentiment.label == SentimentLabel.positive:
        reasons.append(f"正面情感({score:.2f})，不按升级词提级")
        categories = []
    if categories:
        return Assessment(Priority.P1, reasons, categories, hits)

    if negative and is_vip(event, rules) and score <= rules.vip_negative_score:
        categories.append("vip")
        reasons.append(f"VIP 客户({event.customer.tier})强烈负面: 情感 {score:.2f}")
    reach = _social_reach(event, rules) if negative else None
    if reach:
        categories.append("social_reach")
        reasons.append(f"高传播负面社交帖: {reach}")
    if categories:
        return Assessment(Priority.P2, reasons, categories, hits)

    if negative and score <= rules.negative_score and event.primary_issue.value not in rules.unspecific_issue_types:
        categories.append("negative")
        reasons.append(f"负面({score:.2f}) · {ISSUE_TYPE_ZH[event.primary_issue]}")
        return Assessment(Priority.P3, reasons, categories, hits)
    blamed = [a.issue_type for a in event.aspect_sentiments
              if a.sentiment == SentimentLabel.negative and a.issue_type.value not in rules.unspecific_issue_types]
    if rules.negative_aspects and not negative and blamed:
        categories.append("negative_aspect")
        reasons.append(f"负面方面: {'、'.join(ISSUE_TYPE_ZH[t] for t in blamed)}(整体{event.sentiment.label.value})")
        return Assessment(Priority.P3, reasons, categories, hits)
    return Assessment(Priority.P4, reasons, categories, hits)
