"""A live theme the weekly digest has not named yet is named by its members' keywords in alert titles."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import sqlalchemy as sa

from consumers.alerter.engine import series_zh
from consumers.alerter.stage import AlerterStage, ThemeLabelLookup, provisional_label
from consumers.store.feedback_store import FeedbackStore
from tests.alerts.helpers import NOW, T0, enriched
from topics.schemas import IssueType
from topics.settings import AlertSettings

PAYMENT = [
    "付款的时候支付失败了，但是银行卡已经扣款了",
    "支付失败好几次，每次都扣款，钱去哪了",
    "下单支付失败，提示网络错误，却被扣款两次",
    "重复扣款了！支付失败还扣钱，赶紧退给我",
    "微信支付失败但是余额被扣款了",
    "支付失败之后订单没了，扣款也没退回",
    "今天支付一直失败，信用卡被扣款三笔",
    "支付失败，扣款成功，客户端显示未付款",
    "用支付宝支付失败，账户扣款了订单却是待付款",
    "扣款了但是显示支付失败，请尽快处理",
]
BACKGROUND = {
    "th-logistics": ["快递三天了还没到，物流信息一直不更新", "物流太慢了，包裹在中转站停了一周", "快递员不送货上门，物流差评",
                     "物流显示已签收但我没收到包裹", "发货太慢，快递到现在还在路上"],
    "th-quality": ["衣服质量很差，洗一次就掉色开线", "鞋子质量不行，穿两天就开胶", "质量太差了，做工粗糙有线头",
                   "杯子质量有问题，到手就有裂缝", "面料质量一般，起球严重"],
    None: ["客服态度很差，问什么都不回复", "联系客服半天没人理，人工客服找不到", "客服一直推脱，问题没解决",
           "包装破损，盒子都压扁了", "屏幕有划痕，像是二手的"],
}
BACKGROUND_WORDS = ("物流", "快递", "质量", "客服", "包装", "包裹", "划痕")


def _fill(store: sa.Engine, label: str | None = None) -> None:
    with store.begin() as conn:
        for theme_id, theme_label in (("th-pay", label), ("th-empty", None)):
            conn.execute(sa.text(
                "INSERT INTO themes (theme_id, status, centroid, size, label, keywords, created_at, updated_at) "
                "VALUES (:id, 'active', :c, 10, :label, '[]', :t, :t)"), {"id": theme_id, "c": b"\0", "label": theme_label, "t": NOW})
    items = [(enriched(text, f"e-pay-{i}", T0 + timedelta(minutes=i), IssueType.price_billing, theme_id="th-pay"), np.zeros(4))
             for i, text in enumerate(PAYMENT)]
    # 50 background texts about other things: ten copies of each with a number, so they are not all identical.
    for theme_id, texts in BACKGROUND.items():
        for i in range(10):
            for j, text in enumerate(texts):
                n = len(items)
                items.append((enriched(f"{text} {i}", f"e-bg-{n}", T0 + timedelta(minutes=n), theme_id=theme_id), np.zeros(4)))
    FeedbackStore(store, run_migrations=False).upsert_enriched(items)


def test_provisional_label_is_what_the_texts_are_about() -> None:
    from consumers.themes.keywords import KeywordExtractor

    keywords = KeywordExtractor()
    background = [t for texts in BACKGROUND.values() for t in texts] * 10
    label = provisional_label(keywords, PAYMENT, background)
    assert label and ("支付" in label or "扣款" in label), label
    assert not any(word in label for word in BACKGROUND_WORDS), label
    # Too few texts to say what they share.
    assert provisional_label(keywords, PAYMENT[:2], background) is None
    assert provisional_label(keywords, [], background) is None


def test_an_unlabelled_theme_is_named_by_its_members_keywords(store: sa.Engine) -> None:
    _fill(store)
    lookup = ThemeLabelLookup(store)
    label = lookup("th-pay")
    assert label and ("支付" in label or "扣款" in label), label
    assert not any(word in label for word in BACKGROUND_WORDS), label
    # The alert names it by that label, not by its id.
    assert series_zh("theme:th-pay", lookup) == f"主题「{label}」"
    # A theme without members, and one that is not there, have no name (the title shows the id).
    assert lookup("th-empty") is None and lookup("th-unknown") is None
    assert series_zh("theme:th-empty", lookup) == "主题 th-empty"


def test_a_stored_label_wins_once_written(store: sa.Engine) -> None:
    _fill(store)
    lookup = ThemeLabelLookup(store)
    provisional = lookup("th-pay")
    assert provisional
    with store.begin() as conn:
        conn.execute(sa.text("UPDATE themes SET label = '支付故障' WHERE theme_id = 'th-pay'"))
    # The provisional label holds until it is due for a refresh …
    assert lookup("th-pay") == provisional
    lookup.RETRY_S = 0.0
    # … then the digest's label replaces it, and stays.
    assert lookup("th-pay") == "支付故障"
    with store.begin() as conn:
        conn.execute(sa.text("UPDATE themes SET label = NULL WHERE theme_id = 'th-pay'"))
    assert lookup("th-pay") == "支付故障"


def test_a_stored_label_is_used_as_it_is(store: sa.Engine) -> None:
    _fill(store, label="充电器发烫")
    lookup = ThemeLabelLookup(store)
    assert lookup("th-pay") == "充电器发烫"
    assert lookup._keywords is None  # no keyword work where the store has a label


def test_a_store_without_tables_or_unreachable_gives_no_label(tmp_path) -> None:
    bare = sa.create_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    assert ThemeLabelLookup(bare)("th-pay") is None
    broken = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    assert ThemeLabelLookup(broken)("th-pay") is None


def test_the_stage_names_themes_through_the_lookup(store: sa.Engine) -> None:
    stage = AlerterStage(AlertSettings(), store, clock=lambda: NOW)
    assert isinstance(stage.engine.theme_label, ThemeLabelLookup)
