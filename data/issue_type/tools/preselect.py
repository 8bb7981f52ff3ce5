"""Keyword PRE-SELECTION of candidates per class from work/pool.jsonl.

The keyword hits only decide which texts get read; every candidate is then
read and labelled by hand (work/labels_*.txt). Writes work/candidates.jsonl
(cid, pool id, source, text, hint) in a shuffled order.
"""
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

W = Path(__file__).resolve().parent.parent / "work"

RULES = {
    "logistics": r"送餐|配送|送达|送到|送来|快递|物流|骑手|送货|小哥|派送|发货|到货|送错|漏送|少送|等了.{0,4}(小时|分钟)|一个多?小时|超时|太慢|送得慢|送的慢|顺丰|申通|圆通|韵达|EMS",
    "product_quality": r"质量|坏了|破损|不新鲜|难吃|变质|馊|异物|头发|虫|量少|份量|分量|假货|正品|做工|瑕疵|掉色|起球|漏水|噪音|发热|划痕|坏的|脏|异味|霉|隔音|设施|陈旧|老化",
    "price_billing": r"价格|太贵|很贵|便宜|性价比|优惠|红包|满减|发票|多收|收费|价钱|降价|涨价|差价|配送费|打包费|餐盒费|多扣|扣费|扣款|溢价|价位|房价|元一晚|抬价",
    "service_attitude": r"态度|客服|服务员|前台|服务差|服务太差|不理|爱答不理|骂人|凶|敷衍|投诉|不耐烦|推脱|踢皮球|没人管|不回复|服务很差|服务一般|冷漠",
    "refund_aftersales": r"退款|退货|换货|退钱|售后|维修|保修|退了|三包|补送|赔偿|退换|返修|换了一|寄回|退回",
    "technical": r"闪退|死机|蓝屏|bug|BUG|崩溃|卡顿|登录|登陆|打不开|驱动|上不了网|断网|宽带|网速|无法连接|APP|app|系统崩|黑屏|重启|下不了单|支付失败|付不了款|服务器|崩了|网络",
    "account_privacy": r"隐私|个人信息|泄露|泄漏|骚扰|推销电话|短信轰炸|盗号|被盗|账号|帐号|密码|实名|身份证|手机号",
    "policy_contract": r"规定|规则|政策|合同|条款|押金|会员|积分|不允许|不让|制度|预授权|担保|协议|霸王|入住时间|退房时间|延迟退房|取消预订|违约|规矩",
    "suggestion": r"建议|希望.{0,10}(能|可以|改进|增加|提供|多)|如果能|最好能|能否|可否|可以考虑|改进一下|期待.{0,6}(推出|出|增加)|应该.{0,6}(增加|提供|改)|要是能",
    "praise": r"好评|赞|满意|非常好|很好吃|不错|推荐|喜欢|五星|棒|贴心|热情|周到|超快|很快",
}
COMPLAINT = re.compile(r"不|没|差|慢|贵|难|坏|退|投诉|失望|垃圾|但|可惜|就是|缺点|不足")
QUOTA = {"logistics": 300, "product_quality": 300, "price_billing": 260, "service_attitude": 260,
         "refund_aftersales": 240, "technical": 200, "account_privacy": 120, "policy_contract": 200,
         "suggestion": 240, "praise": 260, "other": 200}


def main(seed=13):
    rnd = random.Random(seed)
    pool = [json.loads(l) for l in open(W / "pool.jsonl", encoding="utf-8")]
    by = defaultdict(list)
    for r in pool:
        t = r["text"]
        if not (6 <= len(t) <= 160):
            continue
        src = r["source"].split(":")[0]
        hits = [c for c, rx in RULES.items() if re.search(rx, t)]
        if "praise" in hits and (len(hits) > 1 or COMPLAINT.search(t)):
            hits.remove("praise")
        if src.startswith("weibo"):
            # weibo: only consumer-ish hits, plus a random slice as 'other'
            hits = [h for h in hits if h != "praise"]
        if not hits and (src.startswith("weibo") or not COMPLAINT.search(t) or rnd.random() < 0.05):
            by["other"].append(r)
        for h in hits:
            by[h].append(r)
    chosen, used = [], set()
    for c in ["account_privacy", "policy_contract", "technical", "refund_aftersales", "suggestion",
              "service_attitude", "price_billing", "logistics", "product_quality", "praise", "other"]:
        cands = [r for r in by[c] if r["id"] not in used]
        rnd.shuffle(cands)
        # spread over sources
        per_src = defaultdict(list)
        for r in cands:
            per_src[r["source"].split(":")[0]].append(r)
        picked, srcs = [], sorted(per_src)
        cap = {s: (QUOTA[c] * (0.4 if c == "other" else 0.15) if s.startswith("weibo") else 10**9) for s in srcs}
        while len(picked) < QUOTA[c] and any(per_src.values()):
            for s in srcs:
                if per_src[s] and len(picked) < QUOTA[c] and cap[s] > 0:
                    picked.append(per_src[s].pop()); cap[s] -= 1
            if all(not per_src[s] or cap[s] <= 0 for s in srcs):
                break
        for r in picked:
            used.add(r["id"])
            chosen.append({"pid": r["id"], "source": r["source"], "text": r["text"], "hint": c,
                           "meta": r["meta"]})
    rnd.shuffle(chosen)
    for i, r in enumerate(chosen):
        r["cid"] = i
    with open(W / "candidates.jsonl", "w", encoding="utf-8") as f:
        for r in chosen:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(chosen), Counter(r["hint"] for r in chosen))
    print(Counter(r["source"].split(":")[0] for r in chosen))
    print({c: len(v) for c, v in by.items()})



# ---- stage 2: sharper rules for classes that stage 1 under-delivered ----
RULES2 = {
    "service_attitude": r"态度.{0,3}(差|恶劣|不好|极差|很差|太差|冷淡|生硬)|爱理不理|爱答不理|不耐烦|敷衍|推来推去|踢皮球|挂.{0,2}电话|没人接|打不通|不回复|没人理|服务员.{0,8}(聊天|不理|没礼貌|凶)|客服.{0,12}(不理|敷衍|推|差|态度)|前台.{0,10}(态度|不理|冷漠)",
    "refund_aftersales": r"退款|不给退|不让退|退不了|退货.{0,8}(麻烦|不|慢|难)|换货|售后.{0,6}(差|不|太|电话|服务)|保修|返修|维修|三包|退钱|补发|补送|赔",
    "price_billing": r"多收|乱收费|收费|发票|降价|价保|保价|差价|优惠券|满减|涨价|贵了|扣了|多扣|押金.{0,6}退|红包|打折|价格.{0,4}(贵|高|不)|不值",
    "policy_contract": r"押金|预授权|担保|延迟退房|规定|规则|政策|协议价|会员|积分|不允许|不让.{0,6}(进|带|停|用)|身份证|退房时间|入住时间|霸王条款|条款|合同|制度|不能签单|保价",
    "account_privacy": r"骚扰电话|骚扰|隐私|个人信息|泄露|泄漏|盗|账号|帐号|密码|实名|推销电话|短信",
    "technical": r"闪退|死机|蓝屏|崩溃|崩了|登录|登陆|打不开|上不了网|宽带|无法上网|网络.{0,4}(差|不好|不通|断|慢)|掉线|驱动|系统.{0,6}(问题|崩|卡|慢|难装|bug)|下不了单|支付|付不了|app|APP|软件.{0,4}(问题|卡|闪)|网页|链接",
    "suggestion": r"建议.{0,20}(增加|提供|改|换|多|加|能|可以|把|设|出)|希望.{0,12}(增加|提供|改进|加|多|推出|能够|能有|可以有)|如果能|要是能|如果有|最好能|能不能.{0,10}(加|多|改|出)|可以考虑|能否",
}
QUOTA2 = {"account_privacy": 90, "policy_contract": 150, "technical": 130, "refund_aftersales": 200,
          "service_attitude": 200, "suggestion": 160, "price_billing": 150}


def stage2(seed=29):
    rnd = random.Random(seed)
    pool = [json.loads(l) for l in open(W / "pool.jsonl", encoding="utf-8")]
    done = {json.loads(l)["pid"] for l in open(W / "candidates.jsonl", encoding="utf-8")}
    by = defaultdict(list)
    for r in pool:
        t = r["text"]
        if r["id"] in done or not (6 <= len(t) <= 200):
            continue
        weibo = r["source"].startswith("weibo")
        for c, rx in RULES2.items():
            if re.search(rx, t) and (not weibo or c in ("account_privacy", "technical", "price_billing", "policy_contract")):
                by[c].append(r)
    out, used = [], set()
    for c in QUOTA2:
        cands = [r for r in by[c] if r["id"] not in used]
        rnd.shuffle(cands)
        for r in cands[:QUOTA2[c]]:
            used.add(r["id"])
            out.append({"pid": r["id"], "source": r["source"], "text": r["text"], "hint": c + "/2", "meta": r["meta"]})
    rnd.shuffle(out)
    for i, r in enumerate(out):
        r["cid"] = 10000 + i
    with open(W / "candidates.jsonl", "a", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(out), {c: len(v) for c, v in by.items()})



# ---- stage 3: texts where the rare class is likely the MAIN point ----
RULES3 = {
    "suggestion": r"^.{0,30}(建议|希望|如果能|要是能|能不能|最好)|(建议|希望).{0,15}(增加|提供|推出|出个|加个|多出|改成|换成|开通|恢复|设置)",
    "service_attitude": r"^.{0,12}(服务态度|态度|客服|服务员|前台|店员|老板|接电话)|态度(极差|恶劣|太差|很差|非常差|差劲)|骂人|脏话|翻白眼|爱搭不理|爱理不理",
    "refund_aftersales": r"^.{0,15}(退款|退货|换货|售后|维修|保修|退钱|返修)|(退款|退钱).{0,10}(没|不|还没|迟迟)|(售后|维修).{0,8}(差|慢|推|拖)",
    "technical": r"闪退|崩了|崩溃|打不开|登不上|登录不|无法登录|下不了单|付不了|支付失败|系统.{0,4}(出错|错误|故障|bug|问题)|无法上网|上不了网|宽带.{0,6}(不|没|坏)|网络.{0,6}(不通|故障|坏|断)|bug|BUG",
    "policy_contract": r"押金|预授权|担保|规定|积分|会员.{0,8}(权益|规则|卡|费|制度)|延迟退房|霸王|条款|协议|合同|不让.{0,4}(进|带|验|开)|规矩",
    "account_privacy": r"骚扰电话|骚扰|隐私|泄露|泄漏|盗号|被盗|个人信息|推销电话",
}
QUOTA3 = {"suggestion": 150, "service_attitude": 120, "refund_aftersales": 120, "technical": 80,
          "policy_contract": 70, "account_privacy": 50}


def stage3(seed=31):
    rnd = random.Random(seed)
    pool = [json.loads(l) for l in open(W / "pool.jsonl", encoding="utf-8")]
    done = {json.loads(l)["pid"] for l in open(W / "candidates.jsonl", encoding="utf-8")}
    by = defaultdict(list)
    for r in pool:
        t = r["text"]
        if r["id"] in done or not (5 <= len(t) <= 220):
            continue
        weibo = r["source"].startswith("weibo")
        for c, rx in RULES3.items():
            if re.search(rx, t) and (not weibo or c in ("account_privacy", "technical")):
                by[c].append(r)
    out, used = [], set()
    for c in QUOTA3:
        cands = [r for r in by[c] if r["id"] not in used]
        rnd.shuffle(cands)
        for r in cands[:QUOTA3[c]]:
            used.add(r["id"])
            out.append({"pid": r["id"], "source": r["source"], "text": r["text"], "hint": c + "/3", "meta": r["meta"]})
    rnd.shuffle(out)
    for i, r in enumerate(out):
        r["cid"] = 20000 + i
    with open(W / "candidates.jsonl", "a", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(out), {c: len(v) for c, v in by.items()})



# ---- stage 4: neutral non-Weibo texts for 'other', more suggestions / service / technical ----
RULES4 = {
    "other": r"还没(用|吃|穿|试|看|安装|拆)|未使用|再来?评价|再追评|用后再|请问|有没有人|不知道.{0,6}(怎么样|效果)",
    "suggestion": r"建议|希望|如果能|要是能|如果有|能不能|可不可以|最好",
    "service_attitude": r"服务员|前台|客服|店员|老板|接线|电话",
    "technical": r"系统|死机|蓝屏|上网|无线|wifi|WIFI|驱动|app|APP|软件|网页",
}
QUOTA4 = {"other": 90, "suggestion": 90, "service_attitude": 60, "technical": 50}


def stage4(seed=37):
    rnd = random.Random(seed)
    pool = [json.loads(l) for l in open(W / "pool.jsonl", encoding="utf-8")]
    done = {json.loads(l)["pid"] for l in open(W / "candidates.jsonl", encoding="utf-8")}
    by = defaultdict(list)
    for r in pool:
        t = r["text"]
        if r["id"] in done or r["source"].startswith("weibo") or not (5 <= len(t) <= 160):
            continue
        pos = r["meta"].get("label") == "1"
        for c, rx in RULES4.items():
            if re.search(rx, t) and (c != "suggestion" or pos) and (c != "service_attitude" or not pos):
                by[c].append(r)
    out, used = [], set()
    for c in QUOTA4:
        cands = [r for r in by[c] if r["id"] not in used]
        rnd.shuffle(cands)
        for r in cands[:QUOTA4[c]]:
            used.add(r["id"])
            out.append({"pid": r["id"], "source": r["source"], "text": r["text"], "hint": c + "/4", "meta": r["meta"]})
    rnd.shuffle(out)
    for i, r in enumerate(out):
        r["cid"] = 30000 + i
    with open(W / "candidates.jsonl", "a", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(out), {c: len(v) for c, v in by.items()})



# ---- stage 5: sharper "main point" rules for the weak classes, skipping every labelled text ----
# Texts that were candidates in stages 1-2 but never read (no entry in labels.txt) may be picked
# again here under a new cid; build_dataset.py checks that no source row is labelled twice.
RULES5 = {
    "account_privacy": r"隐私|个人信息|信息.{0,4}(泄露|泄漏|外泄|被卖|被公开|曝光)|泄露|泄漏|骚扰|推销|短信轰炸|垃圾短信|短信.{0,8}(广告|不断|天天|每天|一直)|盗号|被盗|(账号|帐号|账户|帐户).{0,8}(被|冻结|封|异常|盗|登不|安全)|账号|帐号|账户|帐户|注册|绑定|手机号|身份证|密码|实名|验证码|诈骗|骗子.{0,6}电话|小姐|按摩|偷.{0,2}(看|拍|听|窥|走)|监控|(陌生|不明)电话|资料.{0,6}(泄|被|丢|卖)",
    "policy_contract": r"规定|政策|条款|合同|押金|预授权|会员|积分|不退|不给退|不予退|不能退|不让退|不换|规则|协议|违约|定金|霸王|制度|规矩|必须.{0,6}(先|交|付|押)|(延迟|延时|推迟)退房|退房时间|入住时间|加收.{0,4}(半天|房费)|价保|保价|签单|担保|不开发票|不允许|不准|禁止",
    "suggestion": r"建议.{0,15}(增加|提供|改|换|多|加|出|设|配|把|做|用|取消|降|搞|开|送|放|还是|最好)|希望.{0,12}(能|可以|增加|提供|改进|推出|加|多|出|改)|要是能|如果能|如果有.{0,10}(就|会|更)|能不能|可不可以|可否|能否|最好能|最好是|最好有|应该(增加|提供|多|加|改|配|把|设)|改进一下|改善一下|为什么不",
    "service_attitude": r"客服|前台|服务员|店员|老板|态度|不理|没人接|没人管|打不通|不耐烦|敷衍|推脱|挂.{0,2}电话|服务.{0,4}(差|恶劣|不好|一般|太次|不到位)",
    "refund_aftersales": r"退款|退货|换货|保修|维修|售后|赔偿|退钱|返修|三包|寄回|退回|补发|退换|赔",
    "technical": r"闪退|死机|蓝屏|驱动|系统|无法登录|登录不|登不上|网络|wifi|WIFI|Wifi|无线|宽带|bug|BUG|上网|网速|软件|程序|app|APP|死循环|黑屏|花屏|重启|装不上|安装",
}
# quota order = priority: a text matching several rules is filed under the first class that picks it
QUOTA5 = {"account_privacy": 250, "policy_contract": 250, "suggestion": 250,
          "service_attitude": 70, "refund_aftersales": 70, "technical": 70}
MAXLEN5 = {"account_privacy": 400}  # the pool holds few privacy texts: long ones are read too


def unread_pool():
    """Pool texts no label (or X) covers and no stage-5 pass (cid 40000+) picked yet."""
    pool = [json.loads(l) for l in open(W / "pool.jsonl", encoding="utf-8")]
    cands = [json.loads(l) for l in open(W / "candidates.jsonl", encoding="utf-8")]
    labelled_cids = set()
    for line in open(W / "labels.txt", encoding="utf-8"):
        if line.lstrip().startswith("#"):
            continue
        labelled_cids.update(int(tok.split(":")[0]) for tok in line.split())
    skip = {c["pid"] for c in cands if c["cid"] in labelled_cids or c["cid"] >= 40000}
    return [r for r in pool if r["id"] not in skip]


def append_candidates(out, rnd, first_cid, by):
    """Shuffle a pass's picks, number them from ``first_cid`` and append them to candidates.jsonl."""
    rnd.shuffle(out)
    for i, r in enumerate(out):
        r["cid"] = first_cid + i
    with open(W / "candidates.jsonl", "a", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(out), {c: len(v) for c, v in by.items()}, Counter(r["hint"] for r in out))


def stage5(seed=41):
    rnd = random.Random(seed)
    pool = unread_pool()
    by = defaultdict(list)
    for r in pool:
        t = r["text"]
        if not 5 <= len(t) <= 400:
            continue
        weibo = r["source"].startswith("weibo")
        for c, rx in RULES5.items():
            if len(t) <= MAXLEN5.get(c, 220) and re.search(rx, t) and (not weibo or c in ("account_privacy", "technical", "policy_contract")):
                by[c].append(r)
    out, used = [], set()
    for c in QUOTA5:
        cs = [r for r in by[c] if r["id"] not in used]
        rnd.shuffle(cs)
        # Weibo at most a quarter of a class so the consumer domains dominate
        wb = [r for r in cs if r["source"].startswith("weibo")][: QUOTA5[c] // 4]
        nb = [r for r in cs if not r["source"].startswith("weibo")]
        picked = (nb[: QUOTA5[c] - len(wb)] + wb)[: QUOTA5[c]]
        for r in picked:
            used.add(r["id"])
            out.append({"pid": r["id"], "source": r["source"], "text": r["text"], "hint": c + "/5", "meta": r["meta"]})
    append_candidates(out, rnd, 40000, by)



# ---- stage 5b: second, sharper pass (the broad pass above found few primary rare-class texts) ----
RULES5B = {
    "account_privacy": r"骚扰|推销|隐私|个人信息|泄露|泄漏|盗刷|冒用|木马|盗号|诈骗|骗子.{0,6}(电话|短信)|电话.{0,10}(按摩|小姐|特殊服务)|(按摩|小姐|特殊服务).{0,10}电话|短信.{0,6}(广告|骚扰)|信息.{0,6}(卖|泄|透露)",
    "policy_contract": r"限购.{0,10}价保|不支持价保|无法价保|不能价保|不予价保|价保.{0,8}(规则|规定|条件|限制|范围)|七天价保|7天价保|黑号|账号.{0,6}黑|(拆|开封|打开|用过|使用过?|试用).{0,6}(就|了)?(不能|不让|不给|不予|无法)(退|换)|霸王条款|运费险|免运费|(定金|订金|预付款|预收款).{0,10}(不退|不能退|不给退)|押金|预授权|加收.{0,3}半天|半天房费|退房时间|延迟退房|规定|制度|条款|合同|会员.{0,8}(规则|制度|权益|特权|等级)|积分",
    "suggestion": r"(如果|要是|若是?|假如).{0,20}(就更好|就好了|更好了|就完美|会更好|就更完美)|就更好了|就更完美了|建议.{0,15}(增加|加个|加点|改进|改成|改为|换成|出个|推出|提供|配个|配上|多放|少放|做成|搞个|开通|设置)|希望.{0,10}(增加|推出|出个|加个|提供|能出|改成|开通|能有|可以有)|能不能.{0,10}(加|出|改|多|少|换)|为什么不.{0,10}(出|做|加|提供|配)",
    "technical": r"驱动|装系统|装XP|装xp|重装|蓝屏|死机|系统.{0,4}(崩|卡死|问题|不稳定|兼容)|闪退|无法上网|上不了网|宽带.{0,6}(不|慢|断|坏)|网络.{0,6}(不|断|慢)|wifi.{0,6}(不|断|差)|WIFI.{0,6}(不|断|差)|无线.{0,6}(不|断|连不)|掉线|系统更新|升级.{0,6}(失败|后)|软件.{0,6}(不兼容|装不)|兼容",
    "service_attitude": r"态度.{0,4}(差|恶劣|不好|极差|很差|太差|冷淡|生硬|傲慢|蛮横)|爱理不理|爱答不理|不耐烦|敷衍|推来推去|踢皮球|推卸|挂.{0,2}电话|没人接|打不通|不回复|不理人|没人理|骂人|翻白眼|服务意识",
    "refund_aftersales": r"退款.{0,10}(没|不|慢|迟迟|还没|拖)|不给退|不让退|退不了|退货.{0,8}(麻烦|不|慢|难)|换货.{0,8}(麻烦|不|慢|难)|售后.{0,6}(差|不|太|推|慢)|保修|返修|维修|三包|赔偿|补发",
}
QUOTA5B = {"account_privacy": 50, "policy_contract": 150, "suggestion": 300, "technical": 130,
           "service_attitude": 90, "refund_aftersales": 80}
MAXLEN5B = {"account_privacy": 500, "policy_contract": 500, "suggestion": 500}
WEIBO5B = ("account_privacy", "technical", "policy_contract")


def stage5b(seed=43):
    rnd = random.Random(seed)
    pool = unread_pool()
    by = defaultdict(list)
    for r in pool:
        t = r["text"]
        if not 5 <= len(t) <= 500:
            continue
        weibo = r["source"].startswith("weibo")
        for c, rx in RULES5B.items():
            if len(t) <= MAXLEN5B.get(c, 220) and re.search(rx, t) and (not weibo or c in WEIBO5B):
                by[c].append(r)
    out, used = [], set()
    for c in QUOTA5B:
        cs = [r for r in by[c] if r["id"] not in used]
        rnd.shuffle(cs)
        for r in cs[:QUOTA5B[c]]:
            used.add(r["id"])
            out.append({"pid": r["id"], "source": r["source"], "text": r["text"], "hint": c + "/5b", "meta": r["meta"]})
    append_candidates(out, rnd, 41000, by)



# ---- stage 5c: last pass for suggestion (short texts, concrete change requests) and the
# policy texts the broad stage-5 rule matched but its quota left unread ----
RULES5C = {
    "suggestion": r"(再|多|少|更).{0,8}(点|些).{0,6}(就好|更好|就完美|会更好)|建议.{0,12}(把|多|少|加|换|改|做|出|用|提供|增加)|能不能.{0,8}(把|多|少|加|换|改|做|出|送|给)|可不可以.{0,8}(把|多|少|加|换|改|做|出|送|给)|最好(能|再)|应该(增加|提供|多|加|改|配|把|设|出)|如果能.{0,12}(就|会)",
    "policy_contract": RULES5["policy_contract"],
}
QUOTA5C = {"suggestion": 140, "policy_contract": 140}
MAXLEN5C = {"suggestion": 100, "policy_contract": 400}


def stage5c(seed=47):
    rnd = random.Random(seed)
    pool = unread_pool()
    by = defaultdict(list)
    for r in pool:
        t = r["text"]
        if r["source"].startswith("weibo") or not 5 <= len(t) <= 400:
            continue
        for c, rx in RULES5C.items():
            if len(t) <= MAXLEN5C[c] and re.search(rx, t):
                by[c].append(r)
    out, used = [], set()
    for c in QUOTA5C:
        cs = [r for r in by[c] if r["id"] not in used]
        rnd.shuffle(cs)
        for r in cs[:QUOTA5C[c]]:
            used.add(r["id"])
            out.append({"pid": r["id"], "source": r["source"], "text": r["text"], "hint": c + "/5c", "meta": r["meta"]})
    append_candidates(out, rnd, 42000, by)


if __name__ == "__main__":
    import sys
    {"stage2": stage2, "stage3": stage3, "stage4": stage4, "stage5": stage5, "stage5b": stage5b, "stage5c": stage5c}.get((sys.argv[1:] or ["main"])[0], main)()
