"""Social posts and app reviews."""

from __future__ import annotations

from consumers.normalizer.app_channel import parse_app
from consumers.normalizer.social_channel import parse_social
from topics.schemas import AppPayload, SocialPayload


def test_mentions_and_urls_are_stripped_and_counted() -> None:
    content = parse_social(SocialPayload(text="@某某外卖客服 @小王 充电宝鼓包了 https://t.cn/A6x 详见 www.example.com/p?id=1 li@example.com"))
    assert content.text == "充电宝鼓包了 详见 li@example.com"
    assert content.signals["mention_count"] == 2
    assert content.signals["url_count"] == 2


def test_topics_become_tags_and_emoticons_signals() -> None:
    content = parse_social(SocialPayload(text="#外卖送餐慢# 又超时了[怒][怒] #差评#", platform="weibo", post_id="4951234567"))
    assert content.text == "外卖送餐慢 又超时了 差评"
    assert content.signals["tags"] == ["外卖送餐慢", "差评"]
    assert content.signals["emoticons"] == ["怒", "怒"]
    assert content.signals["platform"] == "weibo" and content.signals["post_id"] == "4951234567"


def test_repost_chain_keeps_own_words_and_links_the_original() -> None:
    content = parse_social(SocialPayload(text="我也是！退款等了两周//@小明:同样遇到[泪]//@消费者之声:某某外卖退款迟迟不到账 #维权#"))
    assert content.text == "我也是！退款等了两周"
    assert content.signals["repost_chain"] == ["小明", "消费者之声"]
    assert content.signals["repost_of"] == {"author": "消费者之声", "text": "某某外卖退款迟迟不到账 维权"}
    assert content.flags == ["repost_chain_removed"]


def test_bare_repost_takes_the_nearest_words() -> None:
    content = parse_social(SocialPayload(text="转发微博//@小明:真的太差了[怒]//@原作者:漏送了一份"))
    assert content.text == "真的太差了"
    assert "repost_without_comment" in content.flags
    assert content.signals["emoticons"] == ["怒"]


def test_app_review_signals() -> None:
    content = parse_app(AppPayload(text="一打开就闪退", rating=1, app_version="8.4.0", os="Android 15", device="Xiaomi 14", store="huawei"))
    assert content.text == "一打开就闪退"
    assert content.signals == {"rating": 1, "app_version": "8.4.0", "os": "Android 15", "device": "Xiaomi 14", "store": "huawei"}
    assert content.flags == ["low_rating"]
    assert parse_app(AppPayload(text="很好用", rating=5)).flags == []
    assert parse_app(AppPayload(text="没有评分")).signals == {}
