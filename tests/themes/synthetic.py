"""Two synthetic weeks of feedback: steady themes in both, a new theme only in the second."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

from topics.schemas import Channel, Customer, NormalizedFeedback

THEMES: dict[str, tuple[list[str], list[str]]] = {
    # theme: (openings, complaints) combined into varied messages
    "late_delivery": (
        ["外卖", "这次点的外卖", "晚饭点的餐", "中午订的午餐", "今天的外卖订单"],
        ["送了一个半小时才到，饭菜全凉了", "骑手超时一个小时还没送到", "配送太慢了，等了快两个小时", "显示已送达但一直没收到，骑手电话也打不通"],
    ),
    "app_crash": (
        ["更新到新版本后", "升级APP以后", "最新版本的APP", "昨天更新之后"],
        ["一打开就闪退，根本没法下单", "总是闪退，付款页面直接白屏", "每次登录都闪退，卡在启动页", "一点购物车就闪退，重装也没用"],
    ),
    "refund": (
        ["申请退款", "退货退款", "我的售后申请", "取消订单后的退款"],
        ["已经十天了还没到账", "客服一直说在处理，钱就是不退", "审核通过了但迟迟没有退回", "退款进度一直卡住，没人管"],
    ),
    # Only in week two: the emerging theme (15: with weeks of 34 and 48 messages, 0 → 15 is significant for the
    # two-sample test of the story scan, p = (48/82)^15 ≈ 3e-4; 0 → 12 would not be, p ≈ 0.001).
    "power_bank": (
        ["买的充电宝", "这个充电宝", "新收到的移动电源", "刚买的充电宝"],
        ["用了两天就鼓包了，太危险", "充电的时候发烫鼓包", "外壳鼓起来了还有焦味", "才用一周就鼓包，不敢再用"],
    ),
}


def messages(theme: str, count: int, seed: int) -> list[str]:
    openings, complaints = THEMES[theme]
    pairs = list(itertools.product(openings, complaints))
    random.Random(seed).shuffle(pairs)
    return [f"{a}{b}。" for a, b in (pairs * 3)[:count]]


def week_events(week_monday: datetime, plan: dict[str, int], seed: int, prefix: str) -> list[NormalizedFeedback]:
    events = []
    n = 0
    for theme, count in plan.items():
        for text in messages(theme, count, seed + len(theme)):
            n += 1
            events.append(
                NormalizedFeedback(
                    event_id=f"{prefix}-{theme}-{n}",
                    channel=Channel.app if n % 3 else Channel.social,
                    source="synthetic",
                    received_at=week_monday + timedelta(hours=n),
                    customer=Customer(id=f"c{n % 7}"),
                    text=text,
                )
            )
    return events


WEEK1 = datetime(2026, 11, 9, 1, tzinfo=timezone.utc)  # 2026-W46
WEEK2 = datetime(2026, 11, 16, 1, tzinfo=timezone.utc)  # 2026-W47
WEEK1_PLAN = {"late_delivery": 12, "app_crash": 12, "refund": 10}
WEEK2_PLAN = {"late_delivery": 12, "app_crash": 11, "refund": 10, "power_bank": 15}
