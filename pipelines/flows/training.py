"""Training / evaluation flow: retrain with the corrections people made, evaluate the candidate
against the current model on the same held-out data, promote it only if it is not worse.

Steps: gather the corrections from the store (a share held out by event-id hash, never trained
on) → train (``feedback-miner train``; ``skip_finetune`` refits the heads only) → score the
candidate and the current model on the held-out sets (settings ``promotion.eval_sets``) plus the
held-out corrections → promote when no figure is worse by more than ``promotion.max_regression``
(``models.promotion``: versioned folder, ``current`` pointer, promotions.json, a line in the model
card, a Prefect markdown artifact). ``feedback-miner model rollback`` undoes a promotion.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task

REPO = Path(__file__).resolve().parents[2]


@task(name="train-classifiers")
def train_task(config: dict) -> dict:
    from models.training import TrainConfig, train

    return train(TrainConfig(**config))


@task(name="evaluate")
def eval_task(task_name: str, data: str, artifacts: str | None, model_dir: str | None, quantize: bool) -> dict:
    from models.evaluation import evaluate, read_eval_file
    from models.feedback_model import FeedbackModel

    rows = read_eval_file(Path(data), task_name)
    model = FeedbackModel.load(Path(model_dir) if model_dir else None, Path(artifacts) if artifacts else None,
                               quantize=quantize)
    return evaluate(model, rows, task_name)


@task(name="gather-corrections")
def corrections_task(store_url: str, work: str, heldout_share: float, weight: int) -> dict:
    """The latest correction of each event, split by event-id hash into training rows and held-out eval files."""
    from consumers.store.corrections import CorrectionStore
    from models.corrections_data import LabelledText, split, training_examples, write_eval_files

    store = CorrectionStore.from_url(store_url)
    try:
        latest = store.latest()
    finally:
        store.close()
    texts = [LabelledText(c.event_id, c.text, c.primary_issue.value, tuple(t.value for t in c.issue_types),
                          c.sentiment.value) for c in latest]
    train, held = split(texts, heldout_share)
    out: dict = {"train": len(train), "heldout": len(held), "heldout_event_ids": [c.event_id for c in held],
                 "train_issue": None, "train_sentiment": None, "heldout_files": {}}
    if train:
        import json

        folder = Path(work)
        folder.mkdir(parents=True, exist_ok=True)
        rows = training_examples(train, weight)
        issue = folder / "corrections_train_issue.jsonl"
        issue.write_text("".join(json.dumps({"text": r.text, "label": r.label, "labels": r.labels, "source": r.source,
                                             "origin": r.origin}, ensure_ascii=False) + "\n" for r in rows),
                         encoding="utf-8")
        sentiment = folder / "corrections_train_sentiment.jsonl"
        sentiment.write_text("".join(json.dumps({"text": c.text, "label": c.sentiment}, ensure_ascii=False) + "\n"
                                     for c in train for _ in range(weight)), encoding="utf-8")
        out.update(train_issue=str(issue), train_sentiment=str(sentiment))
    out["heldout_files"] = {task: str(p) for task, p in write_eval_files(held, Path(work) / "heldout").items()}
    return out


def eval_sets(configured: list, corrections_files: dict[str, str]) -> list[dict]:
    """What both models are scored on: each configured set (macro-F1 for issue types, accuracy for
    sentiment) and the held-out corrections (accuracy: they are few)."""
    sets = []
    for task_name, path in configured:
        path = Path(path) if Path(path).is_absolute() else REPO / path
        metric = "macro_f1" if task_name == "issue_type" else "accuracy"
        sets.append({"name": f"{task_name}:{path.stem}:{metric}", "task": task_name, "path": str(path),
                     "metric": metric, "capped": True})
    for task_name, path in sorted(corrections_files.items()):
        sets.append({"name": f"corrections:{task_name}:accuracy", "task": task_name, "path": path,
                     "metric": "accuracy", "capped": False})
    return sets


@task(name="score-model")
def score_task(artifacts: str, sets: list[dict], model_dir: str | None, quantize: bool | str,
               max_rows: int | None) -> dict[str, float]:
    """One model's figures on the held-out sets (higher is better)."""
    from models.evaluation import evaluate, read_eval_file
    from models.promotion import load_model

    model = load_model(Path(model_dir) if model_dir else None, Path(artifacts), quantize=quantize)
    figures = {}
    for s in sets:
        rows = read_eval_file(Path(s["path"]), s["task"])
        if s["capped"] and max_rows:
            rows = rows[:max_rows]
        figures[s["name"]] = float(evaluate(model, rows, s["task"])[s["metric"]])
    return figures


@task(name="promote-if-not-worse")
def promote_task(registry: str, candidate: str, candidate_figures: dict, current_figures: dict, current_label: str,
                 max_regression: float, force: bool, by: str, data: dict) -> dict:
    from prefect.artifacts import create_markdown_artifact

    from models.promotion import decide, markdown, promote

    decision = decide(candidate_figures, current_figures, max_regression, force)
    record = promote(Path(registry), Path(candidate), decision, by, data)
    label = record.get("version", Path(candidate).name)
    create_markdown_artifact(key="model-promotion", markdown=f"# Model promotion\n\n{markdown(decision, label, current_label)}"
                             f"\nregistry `{registry}`; log `promotions.json`", description=decision.reason)
    return record


@flow(name="train-and-evaluate")
def training_flow(
    out: str | None = None,
    evaluations: list[tuple[str, str]] | None = None,
    quick: bool = False,
    epochs: float = 1.5,
    seed: int = 13,
    shared_data: str | None = None,
    issue_data: str | None = None,
    cache_dir: str | None = None,
    model_dir: str | None = None,
    quantize: bool = True,
    skip_finetune: bool = False,
    corrections: bool = True,
    promote: bool | None = None,
    force_promote: bool = False,
    candidate: str | None = None,
) -> dict:
    """Train (``feedback-miner train``) with the corrections, evaluate, promote if not worse.

    ``out``: where the candidate is written; by default a new folder under the registry's
    ``candidates/`` (the shipped artifacts are never overwritten). ``promote``: compare the
    candidate with the current model and promote it if it is not worse (default: yes when ``out``
    is not given — the operational run; an explicit ``out`` is an experiment). ``force_promote``:
    promote without the comparison (recorded as forced). ``candidate``: evaluate and promote an
    existing artifacts folder instead of training. ``corrections``: train on the corrections in
    the store. ``evaluations``: (task, JSONL file) pairs run with ``eval`` on the candidate
    (default, when not promoting: the issue-type set's real held-out split).
    """
    from topics.settings import Settings

    log = get_run_logger()
    settings = Settings()
    registry = Path(settings.promotion.registry_dir)
    model_dir = model_dir or str(settings.model.dir)
    promote = (out is None or candidate is not None) if promote is None else promote
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="feedback-miner-train-"))  # the corrections as files, removed at the end
    try:
        return _run(log, settings, registry, model_dir, promote, stamp, work, out, evaluations, quick, epochs, seed,
                    shared_data, issue_data, cache_dir, quantize, skip_finetune, corrections, force_promote, candidate)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(log, settings, registry: Path, model_dir: str, promote: bool, stamp: str, work: Path, out, evaluations, quick,
         epochs, seed, shared_data, issue_data, cache_dir, quantize, skip_finetune, corrections, force_promote,
         candidate) -> dict:
    from models.promotion import SHIPPED, current_artifacts, current_version

    gathered = {"train": 0, "heldout": 0, "heldout_files": {}, "train_issue": None, "train_sentiment": None}
    if corrections:
        c = settings.corrections
        gathered = corrections_task(settings.store.url, str(work), c.heldout_share, c.train_weight)
        log.info("corrections: %d to train on, %d held out", gathered["train"], gathered["heldout"])

    metrics: dict = {}
    if candidate is None:
        candidate = out or str(registry / "candidates" / stamp)
        cfg = {
            "out": Path(candidate),
            "shared_data": Path(shared_data) if shared_data else settings.shared_data,
            "issue_data": Path(issue_data) if issue_data else None,
            "cache_dir": Path(cache_dir) if cache_dir else None,
            "model_dir": Path(model_dir),
            "quick": quick,
            "epochs": epochs,
            "seed": seed,
            "skip_finetune": skip_finetune,
            "progress": False,
            "extra_issue_rows": Path(gathered["train_issue"]) if gathered["train_issue"] else None,
            "extra_sentiment_rows": Path(gathered["train_sentiment"]) if gathered["train_sentiment"] else None,
        }
        metrics = train_task(cfg)
        log.info("trained: %s", metrics.get("summary"))

    if evaluations is None and not promote:
        root = Path(issue_data) if issue_data else REPO / "data" / "issue_type"
        held = root / "real_heldout.jsonl"
        evaluations = [("issue_type", str(held))] if held.is_file() else []
    results = {}
    for task_name, data in evaluations or []:
        res = eval_task(task_name, data, candidate, model_dir, quantize)
        log.info("eval %s %s: accuracy %.4f macro-F1 %.4f", task_name, data, res["accuracy"], res["macro_f1"])
        results[f"{task_name}:{Path(data).name}"] = res

    promotion = None
    if promote:
        p = settings.promotion
        sets = eval_sets(p.eval_sets, gathered["heldout_files"])
        current_label = current_version(registry) or SHIPPED
        candidate_figures = score_task(candidate, sets, model_dir, quantize, p.eval_max_rows)
        current_figures = {} if force_promote else score_task(str(current_artifacts(registry)), sets, model_dir,
                                                              quantize, p.eval_max_rows)
        data = {"sets": [{k: s[k] for k in ("name", "path")} for s in sets], "max_rows": p.eval_max_rows,
                "corrections_trained": gathered["train"], "corrections_heldout": gathered["heldout"],
                "heldout_event_ids": gathered.get("heldout_event_ids", [])}
        promotion = promote_task(str(registry), candidate, candidate_figures, current_figures, current_label,
                                 p.max_regression, force_promote, os.environ.get("USER") or "prefect", data)
        log.info("%s: %s", promotion["action"], promotion["decision"]["reason"])
    return {"train": metrics, "eval": results, "corrections": {k: gathered[k] for k in ("train", "heldout")},
            "candidate": candidate, "promotion": promotion}
