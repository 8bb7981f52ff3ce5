"""Training / evaluation flow: train the classifiers, then evaluate them on held-out files."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task


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
) -> dict:
    """Train (``feedback-miner train``), then run ``eval`` on each (task, JSONL file) pair.

    Without ``evaluations``, the issue-type set's real held-out split is evaluated.
    """
    from topics.settings import Settings

    log = get_run_logger()
    model_dir = model_dir or str(Settings().model.dir)
    cfg = {
        "out": Path(out) if out else None,
        "shared_data": Path(shared_data) if shared_data else Settings().shared_data,
        "issue_data": Path(issue_data) if issue_data else None,
        "cache_dir": Path(cache_dir) if cache_dir else None,
        "model_dir": Path(model_dir),
        "quick": quick,
        "epochs": epochs,
        "seed": seed,
        "progress": False,
    }
    metrics = train_task(cfg)
    log.info("trained: %s", metrics.get("summary"))
    if evaluations is None:
        root = Path(issue_data) if issue_data else Path(__file__).resolve().parents[2] / "data" / "issue_type"
        held = root / "real_heldout.jsonl"
        evaluations = [("issue_type", str(held))] if held.is_file() else []
    results = {}
    for task_name, data in evaluations:
        res = eval_task(task_name, data, out, model_dir, quantize)
        log.info("eval %s %s: accuracy %.4f macro-F1 %.4f", task_name, data, res["accuracy"], res["macro_f1"])
        results[f"{task_name}:{Path(data).name}"] = res
    return {"train": metrics, "eval": results}
