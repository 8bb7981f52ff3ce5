"""Training-only `other` rows from social posts (stage 7): `social_other_train.jsonl`.

The shipped issue-type heads read positive posts that are not feedback at all (a holiday, a sunset, a
song) as `praise`: in their training rows positive text is nearly always a product review. This file
adds posts that are not customer feedback, labelled `other` by rule, not by reading each one:

- Weibo posts of `weibo_emotion_virus.jsonl` (an epidemic-time corpus of personal posts), drawn per
  emotion (more happy and neutral ones, the ones taken for praise), leaving out every post that names a
  product, shop, service or money (COMMERCE below), posts shorter than 4 characters, and, as in stage 6
  (`build_extra.py`, whose checks this reuses), every text already in a file of this folder or of
  `data/adjudicated` and every text near a held-out one. In the hand-labelled files 95 % of this corpus's posts
  are `other` (269 of 283), and the rest name a product or service: the keyword filter removes those.
- Self-written everyday posts (`extra/written_social_other.txt`, 70, by the author of this stage).

    python data/issue_type/tools/build_social_other.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from build_extra import D, known_texts, near_held, shared_dir
from models.data import dedup_key

OUT = D / "social_other_train.jsonl"
PER_EMOTION = {"happy": 260, "neutral": 200, "angry": 60, "sad": 50, "fear": 30}
COMMERCE = re.compile(
    r"客服|售后|退款|退货|快递|物流|发货|下单|订单|购买|买了|买的|价格|价钱|[0-9一二三四五六七八九十百千万]+元|块钱|店|商品|产品|质量|"
    r"外卖|酒店|会员|账号|账户|密码|app|APP|App|软件|手机|电脑|银行|支付|付款|充值|扣费|投诉|品牌|官方|公司|"
    r"客户|服务|优惠|红包|淘宝|京东|拼多多|美团|饿了么|[Hh][Tt][Tt][Pp]|蒙牛|伊利|口罩.*(卖|价|贵)"
)


def build(shared: Path) -> list[dict]:
    """The rows of ``social_other_train.jsonl``, made from the shared Weibo file and the written posts."""
    used, held, held_sh = known_texts(OUT)

    def usable(text: str) -> bool:
        k = dedup_key(text)
        return bool(k) and k not in used and not near_held(k, held, held_sh)[0]

    by_emotion: dict[str, list[tuple[int, str]]] = {}
    lines = (shared / "weibo_emotion_virus.jsonl").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        post = json.loads(line)
        text = post["text"].strip()
        if len(text) >= 4 and not COMMERCE.search(text):
            by_emotion.setdefault(post["emotion"], []).append((i, text))
    rng = random.Random(7)
    rows = []
    for emotion, n in PER_EMOTION.items():
        candidates = by_emotion[emotion][:]
        rng.shuffle(candidates)
        taken = 0
        for i, text in candidates:  # checked one by one, in a seeded order, until n are kept
            if taken == n:
                break
            if usable(text):
                used.add(dedup_key(text))
                taken += 1
                rows.append({"text": text, "label": "other", "labels": ["other"],
                             "source": f"weibo_emotion_virus.jsonl:{i}", "origin": "real_social"})
    for text in (D / "extra" / "written_social_other.txt").read_text(encoding="utf-8").splitlines():
        if text.strip() and usable(text):
            used.add(dedup_key(text))
            rows.append({"text": text.strip(), "label": "other", "labels": ["other"], "source": "written",
                         "origin": "written_social"})
    return rows


if __name__ == "__main__":
    rows = build(shared_dir())
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} rows -> {OUT}")
