"""Rules file, term matching with negation, and per-message priority."""

from __future__ import annotations

import pytest

from consumers.alerter.priority import assess
from consumers.alerter.rules import RulesError, TermMatcher, load_rules
from tests.alerts.helpers import enriched
from topics.schemas import Channel, IssueType, Priority


@pytest.mark.parametrize(
    "text, category, term",
    [
        ("充电宝充着充着就起火了", "safety", "起火"),
        ("孩子吃了以后食物中毒住院了", "safety", "食物中毒"),
        ("再不退款我就去12315投诉", "legal", "12315"),
        ("我已经发了律师函", "legal", "律师函"),
        ("如果不处理我就起诉你们", "legal", "起诉"),
        ("不排除起诉你们", "legal", "起诉"),
        ("我要找媒体曝光你们", "media", "曝光"),
    ],
)
def test_escalation_terms_are_found(matcher: TermMatcher, text: str, category: str, term: str) -> None:
    live = [(h.category, h.term) for h in matcher.find(text) if not h.negated]
    assert (category, term) in live


@pytest.mark.parametrize(
    "text, term, negator",
    [
        ("幸好没有人受伤", "受伤", "没有"),
        ("没有造成人员受伤", "受伤", "没有"),
        ("电池鼓包了但未起火", "起火", "未"),
        ("不是爆炸，是外壳裂了", "爆炸", "不是"),
        ("无人受伤", "受伤", "无人"),
        ("我不会起诉的，只想换货", "起诉", "不会"),
    ],
)
def test_negated_terms_are_not_hits(matcher: TermMatcher, text: str, term: str, negator: str) -> None:
    hits = [h for h in matcher.find(text) if h.term == term]
    assert hits and all(h.negated and h.negator == negator for h in hits)


@pytest.mark.parametrize("text", ["报警器坏了，一直响", "在社交媒体上看到你们的广告", "价格110元太贵了", "包装盒有点受潮", "气炸了，外壳也划伤了"])
def test_look_alike_words_do_not_match(matcher: TermMatcher, text: str) -> None:
    assert [h for h in matcher.find(text) if not h.negated] == []


def test_negation_is_local_to_the_hit(matcher: TermMatcher) -> None:
    hits = matcher.find("充电宝起火了，还好未起火蔓延到床上")
    assert [h.negated for h in hits] == [False, True]
    assert assess(enriched("充电宝起火了，还好未起火蔓延到床上"), matcher).priority == Priority.P1


def test_p1_safety_with_reasons(matcher: TermMatcher) -> None:
    result = assess(enriched("热水壶漏电，我手被电了还烫伤了", score=-0.9), matcher)
    assert result.priority == Priority.P1
    assert result.categories == ["safety"]
    assert any("烫伤" in r and "漏电" in r for r in result.reasons)


def test_negated_safety_words_drop_to_p3_and_say_why(matcher: TermMatcher) -> None:
    result = assess(enriched("快递盒被压坏了，幸好没有人受伤", issue=IssueType.logistics, score=-0.5), matcher)
    assert result.priority == Priority.P3
    assert any("没有…受伤" in r for r in result.reasons)


def test_escalation_words_in_a_positive_message_do_not_raise_p1(matcher: TermMatcher) -> None:
    result = assess(enriched("师傅及时报警处理，太感谢了", issue=IssueType.praise, score=0.8), matcher)
    assert result.priority == Priority.P4 and any("不按升级词提级" in r for r in result.reasons)
    assert assess(enriched("师傅及时报警处理", issue=IssueType.logistics, score=0.0), matcher).priority == Priority.P1


def test_p2_strongly_negative_vip(matcher: TermMatcher) -> None:
    assert assess(enriched("太失望了，再也不买了", tier="VIP", score=-0.8), matcher).priority == Priority.P2
    # Mildly negative VIP, or strongly negative regular customer: P3.
    assert assess(enriched("有点失望", tier="vip", score=-0.3), matcher).priority == Priority.P3
    assert assess(enriched("太失望了", tier=None, score=-0.9), matcher).priority == Priority.P3


def test_p2_negative_social_post_with_reach(matcher: TermMatcher) -> None:
    event = enriched("这家店太坑了大家别买", channel=Channel.social, score=-0.7, signals={"reposts": 340})
    result = assess(event, matcher)
    assert result.priority == Priority.P2 and "social_reach" in result.categories
    quiet = enriched("这家店太坑了大家别买", channel=Channel.social, score=-0.7, signals={"reposts": "n/a"})
    assert assess(quiet, matcher).priority == Priority.P3


def test_p3_needs_a_specific_issue_type_and_p4_is_the_rest(matcher: TermMatcher) -> None:
    assert assess(enriched("说不上来，就是不满意", issue=IssueType.other, score=-0.6), matcher).priority == Priority.P4
    assert assess(enriched("快递很快，点赞", issue=IssueType.praise, score=0.8), matcher).priority == Priority.P4
    assert assess(enriched("希望增加夜间模式", issue=IssueType.suggestion, score=0.0), matcher).priority == Priority.P4


def test_a_blamed_aspect_in_a_praising_message_is_p3_for_that_aspect(matcher: TermMatcher) -> None:
    from topics.schemas import AspectSentiment, EnrichedFeedback

    def with_aspects(event, **aspects):
        return EnrichedFeedback.model_validate({**event.model_dump(), "aspect_sentiments": [
            AspectSentiment(issue_type=k, sentiment=v).model_dump() for k, v in aspects.items()]})

    praised = enriched("菜很好吃，就是送得太慢了", issue=IssueType.product_quality, score=0.5)
    assert assess(praised, matcher).priority == Priority.P4  # the verdict alone: nothing to act on
    blamed = assess(with_aspects(praised, product_quality="positive", logistics="negative"), matcher)
    assert blamed.priority == Priority.P3 and blamed.categories == ["negative_aspect"]
    assert any("负面方面" in r and "物流" in r for r in blamed.reasons)
    # Praise of every aspect, or a blamed aspect that names no specific issue, stays P4.
    assert assess(with_aspects(praised, product_quality="positive", logistics="positive"), matcher).priority == Priority.P4
    assert assess(with_aspects(praised, other="negative"), matcher).priority == Priority.P4


def test_rules_file_path_and_bad_files(tmp_path) -> None:
    custom = tmp_path / "rules.yaml"
    custom.write_text(
        "p1: {categories: {recall: {zh: 召回, terms: [召回]}}}\n"
        "negation: {negators: [没有]}\n"
        "p2: {vip_tiers: [vip], vip_negative_score: -0.5}\n"
        "p3: {negative_score: -0.2, unspecific_issue_types: [other]}\n",
        encoding="utf-8",
    )
    matcher = TermMatcher(load_rules(custom))
    assert assess(enriched("这批货要召回吗"), matcher).priority == Priority.P1
    assert assess(enriched("这批货没有召回"), matcher).priority == Priority.P3
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("p1: [unclosed", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(broken)
    incomplete = tmp_path / "incomplete.yaml"
    incomplete.write_text("p1: {categories: {}}\n", encoding="utf-8")
    with pytest.raises(RulesError, match="missing or wrong"):
        load_rules(incomplete)
