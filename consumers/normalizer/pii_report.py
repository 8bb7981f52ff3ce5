"""Measure PII redaction on a labelled case set: recall per kind and false redactions of look-alikes.

    python -m consumers.normalizer.pii_report [CASES.jsonl] [--show-misses]

Each line of the case file is ``{"text": …, "pii": [{"kind": …, "value": …}, …], "keep": […], "note": …}``:
``pii`` lists what must be redacted (kinds are the ``pii`` keys: phone, landline, id_number,
bank_card, email, im_account), ``keep`` the look-alikes that must come out verbatim (order
numbers, amounts, dates, versions …). A case with an empty ``pii`` is a look-alike text.

* **recall** of a kind: the share of its items of which nothing is left — the value is gone and so is
  every group of four or more digits in it;
* **typed**: the share of its items that were counted under their own kind (a landline written
  ``+86 10 …`` counted as ``landline``, not ``phone``);
* **false redaction rate**: the share of ``keep`` items that did not come out verbatim; and the share of
  look-alike texts (no ``pii``) that were changed at all.

The last stdout line is one JSON object with the figures.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from consumers.normalizer.pii import redact

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "tests" / "normalizer" / "pii_cases.jsonl"
_DIGIT_GROUP = re.compile(r"\d{4,}")


@dataclass
class Report:
    items: Counter[str] = field(default_factory=Counter)
    recalled: Counter[str] = field(default_factory=Counter)
    typed: Counter[str] = field(default_factory=Counter)
    keep_items: int = 0
    keep_broken: int = 0
    lookalike_texts: int = 0
    lookalike_changed: int = 0
    misses: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, object]:
        kinds = sorted(self.items)
        return {
            "recall": {k: round(self.recalled[k] / self.items[k], 4) for k in kinds},
            "typed": {k: round(self.typed[k] / self.items[k], 4) for k in kinds},
            "items": {k: self.items[k] for k in kinds},
            "keep_items": self.keep_items,
            "false_redaction_rate": round(self.keep_broken / self.keep_items, 4) if self.keep_items else 0.0,
            "lookalike_texts": self.lookalike_texts,
            "lookalike_texts_changed_rate": round(self.lookalike_changed / self.lookalike_texts, 4) if self.lookalike_texts else 0.0,
        }


def _gone(value: str, output: str) -> bool:
    if value in output:
        return False
    folded = value.translate({0xFF10 + i: 0x30 + i for i in range(10)})
    return not any(group in output.translate({0xFF10 + i: 0x30 + i for i in range(10)}) for group in _DIGIT_GROUP.findall(folded))


def load_cases(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def evaluate(cases: list[dict]) -> Report:
    report = Report()
    for case in cases:
        text = case["text"]
        result = redact(text)
        wanted: Counter[str] = Counter()
        for item in case.get("pii", []):
            kind, value = item["kind"], item["value"]
            report.items[kind] += 1
            wanted[kind] += 1
            if _gone(value, result.text):
                report.recalled[kind] += 1
            else:
                report.misses.append(f"missed {kind}: {value!r} in {text!r} -> {result.text!r}")
        for kind, n in wanted.items():
            report.typed[kind] += min(n, result.counts.get(kind, 0))
        for keep in case.get("keep", []):
            report.keep_items += 1
            if keep not in result.text:
                report.keep_broken += 1
                report.misses.append(f"redacted look-alike: {keep!r} in {text!r} -> {result.text!r}")
        if not case.get("pii"):
            report.lookalike_texts += 1
            if result.text != text:
                report.lookalike_changed += 1
    return report


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    show = "--show-misses" in args
    args = [a for a in args if a != "--show-misses"]
    path = Path(args[0]) if args else DEFAULT_CASES
    report = evaluate(load_cases(path))
    figures = report.figures()
    print(f"PII redaction on {path.name}: {sum(report.items.values())} PII items, {report.keep_items} look-alikes in {report.lookalike_texts} look-alike texts")
    print(f"{'kind':<12} {'items':>5} {'recall':>7} {'typed':>7}")
    for kind in sorted(report.items):
        print(f"{kind:<12} {report.items[kind]:>5} {figures['recall'][kind]:>7.1%} {figures['typed'][kind]:>7.1%}")
    print(f"false redaction rate (look-alikes altered): {figures['false_redaction_rate']:.1%} of {report.keep_items}")
    print(f"look-alike texts changed: {figures['lookalike_texts_changed_rate']:.1%} of {report.lookalike_texts}")
    if show:
        for line in report.misses:
            print("  " + line)
    print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
