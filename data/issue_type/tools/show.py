"""Print candidates [a, b) for manual reading: cid|source-tag|sentiment|text."""
import json, sys
from pathlib import Path
W = Path(__file__).resolve().parent.parent / "work"
a, b = int(sys.argv[1]), int(sys.argv[2])
TAG = {"waimai_10k.csv": "W", "online_shopping_9_cats.csv": "S", "chnsenticorp_train.csv": "H", "weibo_emotion_virus.jsonl": "B"}
for l in open(W / "candidates.jsonl", encoding="utf-8"):
    r = json.loads(l)
    if a <= r["cid"] < b:
        m = r["meta"]; src = r["source"].split(":")[0]
        tag = TAG[src] + (m.get("cat", "") if src.startswith("online") else "")
        print(f'{r["cid"]}|{tag}|{m.get("label", m.get("emotion", ""))}|{r["text"].replace(chr(10), " ")}')
