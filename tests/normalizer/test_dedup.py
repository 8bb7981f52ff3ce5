"""Fingerprints and matching (pure), and the in-process index."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from consumers.normalizer.dedup import MemoryDedupIndex, dedup_key_text, fingerprint, similarity
from topics.settings import DedupSettings

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=timezone.utc)
SETTINGS = DedupSettings()
COMPLAINT = "外卖送了一个半小时才到，饭菜全凉了，骑手还不接电话，太差了。"


def fp(event_id: str, text: str, customer: str = "c1", at: datetime = T0, settings: DedupSettings = SETTINGS):
    return fingerprint(event_id, customer, at, text, settings)


def test_exact_key_ignores_punctuation_spacing_case_and_placeholders() -> None:
    assert dedup_key_text("退款 没到！！ OK [手机号]") == "退款没到ok"
    assert fp("a", "退款没到!!").exact_key == fp("b", "退款 没到。").exact_key
    assert fp("a", "退款没到").exact_key != fp("b", "退款没到", customer="c2").exact_key


def test_short_texts_have_no_signature() -> None:
    short = fp("a", "好评")
    assert short.signature is None and short.band_keys == ()
    assert fp("b", COMPLAINT).signature is not None


def test_similarity_estimates_jaccard() -> None:
    a, b = fp("a", COMPLAINT), fp("b", COMPLAINT.replace("太差了", "太差劲了"))
    unrelated = fp("c", "希望能增加夜间模式，还有订单能按时间筛选就更好了。")
    assert similarity(a.signature, b.signature) >= 0.7
    assert similarity(a.signature, unrelated.signature) < 0.2


def test_memory_index_links_exact_and_near_duplicates_to_the_first() -> None:
    index = MemoryDedupIndex(SETTINGS)
    results = index.resolve([
        fp("e1", COMPLAINT),
        fp("e2", COMPLAINT, at=T0 + timedelta(hours=1)),  # exact, same customer
        fp("e3", COMPLAINT.replace("太差了", "太差劲了"), customer="c2"),  # near, other customer
        fp("e4", "希望能增加夜间模式，还有订单能按时间筛选就更好了。"),
        fp("e5", COMPLAINT, customer="c3", at=T0 + timedelta(days=30)),  # outside the window
    ])
    assert results == [None, "e1", "e1", None, None]


def test_duplicates_of_duplicates_link_to_the_group_root() -> None:
    index = MemoryDedupIndex(SETTINGS)
    first = COMPLAINT
    second = COMPLAINT.replace("太差了", "太差劲了")
    assert index.resolve([fp("e1", first), fp("e2", second, customer="c2"), fp("e3", second, customer="c2")]) == [None, "e1", "e1"]


def test_redelivered_events_get_their_first_answer() -> None:
    index = MemoryDedupIndex(SETTINGS)
    assert index.resolve([fp("e1", COMPLAINT), fp("e2", COMPLAINT)]) == [None, "e1"]
    assert index.resolve([fp("e1", COMPLAINT), fp("e2", COMPLAINT)]) == [None, "e1"]


def test_customer_scope_keeps_near_duplicates_per_customer() -> None:
    scoped = DedupSettings(near_scope="customer")
    index = MemoryDedupIndex(scoped)
    near = COMPLAINT.replace("太差了", "太差劲了")
    assert index.resolve([
        fp("e1", COMPLAINT, settings=scoped),
        fp("e2", near, customer="c2", settings=scoped),
        fp("e3", near, customer="c1", settings=scoped),
    ]) == [None, None, "e1"]


def test_similar_but_different_complaints_are_not_linked() -> None:
    # Two real samples about late delivery: same topic, different messages.
    index = MemoryDedupIndex(SETTINGS)
    assert index.resolve([
        fp("s20", "外卖又晚了四十分钟,而且少送了一份饮料。", customer="c1020"),
        fp("s21", "送达超时,汤都洒了,联系骑手也不回。", customer="c1021"),
        fp("s01", "外卖送了一个半小时才到,饭菜全凉了,骑手还不接电话。", customer="c1001"),
    ]) == [None, None, None]
