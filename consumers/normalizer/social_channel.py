"""Social posts: the author's own words, with mentions, links, topics, emoticons and repost chains as signals.

Signals hold other people's words and names (repost authors, the chain's users, the post URL);
``pipeline.normalize`` redacts every string in them, the reposted text like the post's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from topics.schemas import SocialPayload

_URL = re.compile(r"(?:https?://|www\.)[^\s\u3000，。！？、]+|\bt\.cn/[A-Za-z0-9]+", re.I)
# A repost chain: "own words //@parent: parent's words //@grandparent: …" (the last one is the original).
_REPOST = re.compile(r"//\s*@([^\s:：/]{1,30})\s*[:：]")
_MENTION = re.compile(r"(?<![A-Za-z0-9._%+-])@([\w\u4e00-\u9fff\-]{1,30})")
_TOPIC = re.compile(r"#([^#\n]{1,40})#")
# Emoticon codes such as [怒] [泪] [good]; placeholders like [手机号] are added later, never here.
_EMOTICON = re.compile(r"\[([\u4e00-\u9fff\u3400-\u4dbfA-Za-z]{1,6})\]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[，。！？、；：,.!?;:）)」』])")
# What Weibo fills in when a repost has no comment of its own.
_EMPTY_REPOST = re.compile(r"^\s*(转发微博|轉發微博|Repost|转发|轉發)\s*$", re.I)


@dataclass
class SocialContent:
    text: str
    flags: list[str] = field(default_factory=list)
    signals: dict[str, object] = field(default_factory=dict)


def _split_reposts(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Own words and the chain [(user, words), …] from the nearest repost to the original post."""
    matches = list(_REPOST.finditer(text))
    if not matches:
        return text, []
    own = text[: matches[0].start()]
    chain = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        chain.append((match.group(1), text[match.end() : end].strip()))
    return own, chain


def _strip_markup(text: str, signals: dict[str, object]) -> str:
    urls = _URL.findall(text)
    text = _URL.sub(" ", text)
    mentions = _MENTION.findall(text)
    text = _MENTION.sub(" ", text)
    emoticons = _EMOTICON.findall(text)
    text = _EMOTICON.sub(" ", text)
    tags = [tag.strip() for tag in _TOPIC.findall(text) if tag.strip()]
    # Topic words stay in the text (they say what the post is about); only the # marks go.
    text = _TOPIC.sub(lambda m: f" {m.group(1).strip()} ", text)
    signals["url_count"] = signals.get("url_count", 0) + len(urls)
    signals["mention_count"] = signals.get("mention_count", 0) + len(mentions)
    if emoticons:
        signals.setdefault("emoticons", []).extend(emoticons)
    if tags:
        signals.setdefault("tags", []).extend(t for t in tags if t not in signals.get("tags", []))
    # Removed markup leaves spaces; none belong before punctuation.
    return _SPACE_BEFORE_PUNCT.sub("", " ".join(text.split()))


def parse_social(payload: SocialPayload) -> SocialContent:
    signals: dict[str, object] = {}
    flags: list[str] = []
    own, chain = _split_reposts(payload.text)
    own_text = _strip_markup(own, signals)
    if chain:
        original_user, original_words = chain[-1]
        signals["repost_of"] = {"author": original_user, "text": _strip_markup(original_words, {})}
        signals["repost_chain"] = [user for user, _ in chain]
        flags.append("repost_chain_removed")
        if not own_text or _EMPTY_REPOST.match(own_text):
            # A bare repost endorses the post it shares: its nearest words stand for the author's.
            nearest = next((words for _, words in chain if _strip_markup(words, {})), "")
            own_text = _strip_markup(nearest, signals)
            flags.append("repost_without_comment")
    for name in ("platform", "post_id", "url", "reposts", "likes"):
        value = getattr(payload, name)
        if value is not None:
            signals[name if name != "url" else "post_url"] = value
    return SocialContent(own_text, flags, signals)
