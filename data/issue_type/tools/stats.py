"""Print Markdown count tables (primary label and any-label) for the committed JSONL files."""
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for models.taxonomy
from models.taxonomy import ISSUE_TYPES as LABELS  # noqa: E402

D = Path(__file__).resolve().parent.parent
FILES = ["real_train.jsonl", "real_heldout.jsonl", "written_train.jsonl", "written_heldout.jsonl"]


def main():
    data = {f: [json.loads(l) for l in open(D / f, encoding="utf-8")] for f in FILES}
    for title, fn in [("primary label (`label`)", lambda r: [r["label"]]), ("any label (`labels`)", lambda r: r["labels"])]:
        print(f"\n| {title} | " + " | ".join(f.replace(".jsonl", "") for f in FILES) + " |")
        print("|---" * (len(FILES) + 1) + "|")
        for lbl in LABELS:
            print(f"| {lbl} | " + " | ".join(str(sum(lbl in fn(r) for r in data[f])) for f in FILES) + " |")
        print("| **rows** | " + " | ".join(str(len(data[f])) for f in FILES) + " |")
    print()
    for f in FILES:
        rows = data[f]
        multi = sum(len(r["labels"]) > 1 for r in rows)
        src = Counter(r["source"].split(":")[0] for r in rows)
        print(f"- {f}: {len(rows)} rows, {multi} multi-label ({multi / len(rows):.0%}); sources {dict(src)}")


if __name__ == "__main__":
    main()
