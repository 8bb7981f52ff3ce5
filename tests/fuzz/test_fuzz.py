"""The seeded fuzz suite of issue 17: no poison message may stop a stage.

10,000 generated messages (``tests/fuzz/generator.py``, fixed seed) go through the real
normalizer stage (store-backed dedup) run by the real ``StreamRuntime`` on in-memory topics,
and every body through the HTTP ingest app; a stratified slice of them goes through the
embedded broker. The global invariants:

* no crash: the runtime returns normally and commits every offset; the ingest app never
  answers 5xx;
* in = normalized + dead-lettered, message by message (each input has exactly one output,
  found by its trace id), and each outcome is one the generator expects for that input;
* every dead letter has a specific reason (never ``processing_error``), the original bytes
  and key, and its source position;
* no planted personal data (mobile numbers, ID numbers, bank cards, e-mail addresses) in any
  normalized event or its key, nor in any dead letter's error text;
* ingest: every 2xx event was produced (and the stage then normalizes or dead-letters it as
  ``decode_failed``); every 4xx is JSON naming why (422s carry the stages' reason codes, the same
  the stage gives that body).

Rerun and print the figures: ``.venv/bin/python -m pytest tests/fuzz -s``
(``FEEDBACK_MINER_FUZZ_SEED`` / ``FEEDBACK_MINER_FUZZ_CASES`` explore other corpora).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
import pytest
from kafka import TopicPartition

from consumers.runtime import StreamRuntime
from consumers.testing import MemoryConsumer, MemoryLog, MemoryProducer
from pipelines.ingest_api import create_app
from pipelines.stages import build_stage
from topics.schemas import DeadLetter, DeadLetterReason, NormalizedFeedback, RawFeedback
from topics.serde import DecodeError, decode
from topics.settings import ChannelSettings, IngestSettings, Settings
from topics.specs import DEADLETTER, NORMALIZED, RAW

from tests.fuzz.generator import DEFAULT_CASES, DEFAULT_SEED, Case, generate

SEED = int(os.environ.get("FEEDBACK_MINER_FUZZ_SEED", DEFAULT_SEED))
CASES = int(os.environ.get("FEEDBACK_MINER_FUZZ_CASES", DEFAULT_CASES))
BROKER_SLICE = 600
PARTITIONS = 3
TOKEN = "fuzz-token"
REASONS = {reason.value for reason in DeadLetterReason}


@pytest.fixture(scope="module")
def corpus() -> list[Case]:
    return generate(SEED, CASES)


# --- checking what came out -----------------------------------------------------------------

# Separators people and formatters put between digits; removed before looking for a planted number.
_SEPARATORS = re.compile(r"[\s\-.()+/_\u200b-\u200d\u2060\ufeff]")


def _searchable(text: str) -> tuple[str, str]:
    folded = unicodedata.normalize("NFKC", text).lower()
    return folded, _SEPARATORS.sub("", folded)


def leaked(planted: tuple[str, ...], text: str) -> list[str]:
    """The planted values (digits, or lower-case addresses) that appear in ``text`` in any spelling."""
    if not planted:
        return []
    folded, squeezed = _searchable(text)
    return [value for value in planted if (value in folded if "@" in value else value in squeezed)]


def _kind_of_planted(value: str) -> str:
    if "@" in value:
        return "email"
    if len(value) == 11:
        return "mobile"
    if len(value) == 18:
        return "id_number"
    return "bank_card"


@dataclass
class Out:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class Tally:
    cases: int = 0
    normalized: int = 0
    duplicates_linked: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    planted: Counter[str] = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    unspecific: list[str] = field(default_factory=list)
    by_kind: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def table(self, title: str, seconds: float) -> str:
        dead = sum(self.dead_lettered.values())
        lines = [
            f"{title}: seed {SEED}, {self.cases:,} cases in {seconds:.1f} s",
            f"  normalized      {self.normalized:>6,}  (of which linked as duplicates: {self.duplicates_linked:,})",
            f"  dead-lettered   {dead:>6,}",
            *(f"    {reason:<20}{count:>6,}" for reason, count in sorted(self.dead_lettered.items(), key=lambda kv: -kv[1])),
            "  crashes              0  (the runtime returned normally and committed every offset)",
            f"  planted PII in normalized events {sum(self.planted.values()):,} ({', '.join(f'{k} {v:,}' for k, v in sorted(self.planted.items()))}); leaked: {len(self.leaks)}",
        ]
        return "\n".join(lines)


def check_outputs(
    cases: list[Case],
    normalized: list[Out],
    dead_letters: list[Out],
    positions: dict[str, tuple[int, int]] | None = None,
) -> Tally:
    """One output per case, the outcome it expects, dead letters complete and specific, no planted PII out."""
    tally = Tally(cases=len(cases))
    by_trace = {case.trace_id: case for case in cases}
    outputs: dict[str, list[tuple[str, Out]]] = defaultdict(list)
    for topic, records in (("normalized", normalized), ("dead_letter", dead_letters)):
        for record in records:
            trace = dict(record.headers).get("trace_id", b"").decode()
            outputs[trace].append((topic, record))
    strays = set(outputs) - set(by_trace)
    if strays:
        tally.failures.append(f"{len(strays)} outputs belong to no case (trace ids {sorted(strays)[:5]})")

    for case in cases:
        found = outputs.get(case.trace_id, [])
        if len(found) != 1:
            tally.failures.append(f"{len(found)} outputs for {case.describe()}")
            continue
        topic, record = found[0]
        if topic == "normalized":
            outcome = _check_normalized(case, record, tally)
        else:
            outcome = _check_dead_letter(case, record, tally, positions)
        tally.by_kind[case.kind.split("/")[0]][outcome] += 1
        if outcome not in case.expect:
            tally.failures.append(f"outcome {outcome} not in {sorted(case.expect)}: {case.describe()}")
    return tally


def _check_normalized(case: Case, record: Out, tally: Tally) -> str:
    tally.normalized += 1
    try:
        event = decode(NormalizedFeedback, record.value, record.headers)
    except DecodeError as exc:
        tally.failures.append(f"normalized output does not decode ({exc.reason}: {exc}): {case.describe()}")
        return "normalized"
    if dict(record.headers).get("schema") != b"feedback.normalized":
        tally.failures.append(f"normalized output without its schema header: {case.describe()}")
    if record.key != event.customer.id.encode("utf-8"):
        tally.failures.append(f"normalized key {record.key!r} is not the customer id {event.customer.id!r}: {case.describe()}")
    if event.duplicate_of is not None:
        tally.duplicates_linked += 1
    for value in case.planted:
        tally.planted[_kind_of_planted(value)] += 1
    text = record.value.decode("utf-8") + "\n" + (record.key or b"").decode("utf-8", "replace")
    for value in leaked(case.planted, text):
        tally.leaks.append(f"{_kind_of_planted(value)} {value} in normalized {event.event_id}: {_where(value, event)}")
    return "normalized"


def _where(value: str, event: NormalizedFeedback) -> str:
    """Which top-level fields of the output hold the leaked value."""
    fields = []
    for name, content in event.model_dump(mode="json").items():
        if leaked((value,), json.dumps(content, ensure_ascii=False)):
            fields.append(f"{name}={json.dumps(content, ensure_ascii=False)[:160]}")
    return "; ".join(fields) or "(the key)"


def _check_dead_letter(case: Case, record: Out, tally: Tally, positions: dict[str, tuple[int, int]] | None) -> str:
    try:
        letter = decode(DeadLetter, record.value, record.headers)
    except DecodeError as exc:
        tally.failures.append(f"dead letter does not decode ({exc.reason}: {exc}): {case.describe()}")
        return "unreadable_dead_letter"
    reason = letter.reason.value
    tally.dead_lettered[reason] += 1
    if reason not in REASONS or reason == DeadLetterReason.processing_error:
        tally.unspecific.append(f"{reason}: {letter.error[:600]}\n      {case.describe()}")
    problems = []
    if letter.original_bytes() != (case.value or b""):
        problems.append("original bytes differ")
    if letter.key_base64 != (base64.b64encode(case.key).decode() if case.key is not None else None):
        problems.append(f"key {letter.key_base64!r}")
    if letter.stage != "normalizer" or not letter.source_topic.endswith(RAW) or not letter.error.strip():
        problems.append(f"stage/topic/error {letter.stage!r} {letter.source_topic!r} {letter.error[:80]!r}")
    if positions is not None and (letter.partition, letter.offset) != positions[case.trace_id]:
        problems.append(f"position {(letter.partition, letter.offset)} != {positions[case.trace_id]}")
    if letter.headers.get("trace_id") != case.trace_id:
        problems.append("source headers not kept")
    if problems:
        tally.failures.append(f"dead letter incomplete ({', '.join(problems)}): {case.describe()}")
    for value in leaked(case.planted, letter.error):
        tally.leaks.append(f"{_kind_of_planted(value)} {value} quoted in the error text of a {reason} dead letter: {letter.error[:200]!r}")
    return reason


def assert_clean(tally: Tally) -> None:
    problems = []
    if tally.failures:
        problems.append(f"{len(tally.failures)} invariant failures:\n    " + "\n    ".join(tally.failures[:15]))
    if tally.unspecific:
        problems.append(f"{len(tally.unspecific)} dead letters without a specific reason:\n    " + "\n    ".join(tally.unspecific[:10]))
    if tally.leaks:
        kinds = Counter(leak.split(" ", 1)[0] for leak in tally.leaks)
        problems.append(f"{len(tally.leaks)} planted PII values came out ({dict(kinds)}):\n    " + "\n    ".join(tally.leaks[:15]))
    assert not problems, "\n".join(problems)


def test_the_leak_check_finds_every_planted_value_in_its_input(corpus):
    """Guards the PII assertion against passing vacuously: what the generator says it planted is there to find."""
    checked = 0
    for case in corpus:
        if case.kind.startswith("valid/") and case.kind != "valid/email_mime":  # MIME text is encoded; the others are plain JSON
            text = json.dumps(json.loads(case.value), ensure_ascii=False)
            assert sorted(leaked(case.planted, text)) == sorted(case.planted), case.describe()
            checked += len(case.planted)
    assert checked > 1000
    assert leaked(("13812345678", "zhang.wei88@qq.com", "11010519491231002x"), '"１３８ 1234-5678", "Zhang.Wei88@QQ.com", "110105 19491231 002X"') == [
        "13812345678", "zhang.wei88@qq.com", "11010519491231002x"
    ]


# --- the stage runner on in-memory topics -----------------------------------------------------


def memory_settings(tmp_path) -> Settings:
    return Settings(
        kafka={"bootstrap_servers": "memory:0"},
        runtime={"batch_size": 64, "batch_timeout_ms": 50},
        store={"url": f"sqlite:///{tmp_path / 'store.db'}"},
        data_dir=tmp_path,
    )


def run_stage_on_memory(settings: Settings, log: MemoryLog) -> tuple[StreamRuntime, object, int]:
    """The production normalizer (store-backed dedup) under the real runtime loop; returns the runtime, its stats, the input count."""
    runtime = StreamRuntime(build_stage("normalizer", settings), settings, consumer=MemoryConsumer(log, settings.group_id("normalizer")), producer=MemoryProducer(log))
    total = sum(len(records) for tp, records in log.records.items() if tp.topic == settings.topic(RAW))
    stats = runtime.run(max_messages=total)  # an exception here is a crash: the test fails with its traceback
    return runtime, stats, total


def memory_outputs(log: MemoryLog, settings: Settings, topic: str) -> list[Out]:
    return [Out(r.key, r.value, r.headers) for tp, records in sorted(log.records.items()) if tp.topic == settings.topic(topic) for r in records]


def test_every_case_through_the_stage_runner(corpus, tmp_path):
    started = time.monotonic()
    settings = memory_settings(tmp_path)
    log = MemoryLog(partitions=PARTITIONS)
    positions = {}
    for case in corpus:
        record = log.append(settings.topic(RAW), case.value, case.key, list(case.headers), partition=case.index % PARTITIONS)
        positions[case.trace_id] = (record.partition, record.offset)

    runtime, stats, total = run_stage_on_memory(settings, log)

    assert total == len(corpus)
    assert len(corpus) >= 10_000 or CASES != DEFAULT_CASES
    assert stats.processed == len(corpus)
    assert stats.produced + stats.dead_lettered == len(corpus)
    group = settings.group_id("normalizer")
    for partition in range(PARTITIONS):
        tp = TopicPartition(settings.topic(RAW), partition)
        assert log.committed[(group, tp)] == len(log.records[tp]), f"partition {partition} not committed to its end"
    tally = check_outputs(corpus, memory_outputs(log, settings, NORMALIZED), memory_outputs(log, settings, DEADLETTER), positions)
    assert (tally.normalized, sum(tally.dead_lettered.values())) == (stats.produced, stats.dead_lettered)
    print("\n" + tally.table("stage runner (in-memory topics, SQLite dedup)", time.monotonic() - started))
    assert_clean(tally)


# --- the ingest app -------------------------------------------------------------------------


class IngestProducer(MemoryProducer):
    """The in-memory producer, declared acks=all as the ingest app demands of a real one."""

    config = {"acks": "all"}


@dataclass
class IngestTally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    produced: int = 0
    failures: list[str] = field(default_factory=list)


def _check_response(response, produced: list, tally: IngestTally, what: str) -> int:
    tally.requests += 1
    status = response.status_code
    tally.statuses[status] += 1
    if status >= 500:
        tally.failures.append(f"{status} {response.text[:300]}: {what}")
        return status
    try:
        body = response.json()
    except ValueError:
        tally.failures.append(f"{status} without a JSON body ({response.text[:120]!r}): {what}")
        return status
    if 200 <= status < 300:
        ids = body.get("event_ids", [])
        if body.get("accepted") != len(ids) or len(produced) != len(ids):
            tally.failures.append(f"{status} accepted {body} but {len(produced)} events were produced: {what}")
            return status
        for record, event_id in zip(produced, ids):
            event = decode(RawFeedback, record.value, record.headers)
            if event.event_id != event_id or record.key != event.customer.id.encode("utf-8"):
                tally.failures.append(f"produced {event.event_id}/{record.key!r} for accepted {event_id}: {what}")
        tally.produced += len(produced)
        return status
    if produced:
        tally.failures.append(f"{status} but {len(produced)} events were produced: {what}")
    detail = body.get("detail")
    if status == 422:
        if not isinstance(detail, list) or not detail:
            tally.failures.append(f"422 without a list of errors ({body}): {what}")
        for error in detail or []:
            reason = error.get("reason") if isinstance(error, dict) else None
            if reason not in REASONS:
                tally.failures.append(f"422 error without a dead-letter reason ({error}): {what}")
            else:
                tally.reasons[reason] += 1
    elif not (isinstance(detail, str) and detail):
        tally.failures.append(f"{status} without a reason in detail ({body}): {what}")
    return status


def test_every_body_through_the_ingest_app(corpus, tmp_path):
    """Each case's value as a body (a tombstone as an empty one), plus batches of neighbouring cases.

    The app runs in process behind httpx's ASGI transport (what FastAPI's TestClient wraps,
    without its thread hop per request: 3-4x faster); an exception in the app is a 500.
    """
    started = time.monotonic()
    settings = memory_settings(tmp_path).model_copy(update={"channels": ChannelSettings(ingest=IngestSettings(tokens=[TOKEN]))})
    log = MemoryLog(partitions=1)
    app = create_app(settings, IngestProducer(log), lambda: None)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    raw = TopicPartition(settings.topic(RAW), 0)
    tally = IngestTally()
    single_status: dict[int, tuple[int, str | None]] = {}
    comparable = [c for c in corpus if c.ingest_comparable and c.value and c.value.lstrip().startswith(b"{")]
    batches = []

    async def exercise() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:

            async def post(body: bytes, what: str) -> tuple[int, dict]:
                before = len(log.records[raw])
                response = await client.post("/v1/feedback", content=body, headers=headers)
                status = _check_response(response, log.records[raw][before:], tally, what)
                return status, (response.json() if status < 500 and response.headers.get("content-type", "").startswith("application/json") else {})

            for case in corpus:
                status, body = await post(case.value or b"", case.describe())
                first = body.get("detail", [{}])[0] if isinstance(body.get("detail"), list) else {}
                reason = first.get("reason") if isinstance(first, dict) else None
                single_status[case.index] = (status, reason)
                if not case.ingest_comparable:
                    continue
                # The endpoint and the stage judge a body alike (publish and ingest reject with the stage's reasons).
                if status == 202 and not case.expect & {"normalized", "decode_failed"}:
                    tally.failures.append(f"ingest accepted what the stage dead-letters as {sorted(case.expect)}: {case.describe()}")
                elif status == 422 and reason not in case.expect:
                    tally.failures.append(f"ingest says {reason}, the stage {sorted(case.expect)}: {case.describe()}")
                elif status not in (202, 422):
                    tally.failures.append(f"ingest answered {status} for a single ordinary body: {case.describe()}")

            # Batches: a JSON array of 2-5 neighbouring single events is accepted exactly when each of them is.
            for start in range(0, len(comparable) - 5, 10):
                members = comparable[start : start + 2 + start % 4]
                status, _ = await post(b"[" + b",".join(m.value for m in members) + b"]", f"batch of cases {[m.index for m in members]}")
                batches.append(members)
                if (status == 202) != all(single_status[m.index][0] == 202 for m in members):
                    tally.failures.append(f"batch {[m.index for m in members]} got {status}; alone: {[single_status[m.index][0] for m in members]}")

    asyncio.run(exercise())
    batches = len(batches)

    # What was accepted goes on through the stage runner: normalized or decode_failed, nothing else.
    runtime, stats, total = run_stage_on_memory(memory_settings(tmp_path / "after-ingest"), log)
    after = Counter(dict(stats.produced_by_topic))
    reasons = Counter(json.loads(r.value)["reason"] for r in log.records[TopicPartition(settings.topic(DEADLETTER), 0)]) if stats.dead_lettered else Counter()
    assert stats.processed == total == tally.produced
    if set(reasons) - {"decode_failed"}:
        tally.failures.append(f"accepted events dead-lettered by the stage for {dict(reasons)}")

    seconds = time.monotonic() - started
    print(
        f"\ningest app: seed {SEED}, {tally.requests:,} requests ({len(corpus):,} single bodies, {batches:,} batches) in {seconds:.1f} s\n"
        f"  status          {dict(sorted(tally.statuses.items()))}\n"
        f"  422 reasons     {dict(tally.reasons.most_common())}\n"
        f"  produced        {tally.produced:,} events; through the stage: {after.get(NORMALIZED, 0):,} normalized, {dict(reasons)} dead-lettered"
    )
    assert not tally.failures, f"{len(tally.failures)} ingest invariant failures:\n    " + "\n    ".join(tally.failures[:20])


# --- the real broker ------------------------------------------------------------------------


def broker_slice(cases: list[Case], size: int = BROKER_SLICE) -> list[Case]:
    """Up to ``size`` cases, the same share of every kind of input (the first ones of each)."""
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        groups[case.kind.split("/")[0]].append(case)
    per_group = -(-size // len(groups))
    return sorted((case for group in groups.values() for case in group[:per_group]), key=lambda c: c.index)


@pytest.mark.broker
def test_a_slice_through_the_real_broker(corpus, kafka_settings):
    from consumers.kafka_io import make_consumer, make_producer, read_topic

    started = time.monotonic()
    cases = broker_slice(corpus)
    producer = make_producer(kafka_settings)
    futures = [(case, producer.send(kafka_settings.topic(RAW), key=case.key, value=case.value, headers=list(case.headers))) for case in cases]
    producer.flush()
    positions = {}
    for case, future in futures:
        metadata = future.get(timeout=30)
        positions[case.trace_id] = (metadata.partition, metadata.offset)
    producer.close()

    settings = kafka_settings
    runtime = StreamRuntime(build_stage("normalizer", settings), settings)
    stats = runtime.run(max_messages=len(cases), idle_exit_s=15)
    assert stats.processed == len(cases) and stats.produced + stats.dead_lettered == len(cases)

    consumer = make_consumer(settings, settings.group_id("normalizer"))
    try:
        ends: dict[int, int] = defaultdict(int)
        for partition, offset in positions.values():
            ends[partition] = max(ends[partition], offset + 1)
        for partition, end in ends.items():
            assert consumer.committed(TopicPartition(settings.topic(RAW), partition)) == end
    finally:
        consumer.close()

    def outs(topic: str) -> list[Out]:
        return [Out(r.key, r.value, [(k, v) for k, v in r.headers]) for r in read_topic(settings, topic)]

    tally = check_outputs(cases, outs(NORMALIZED), outs(DEADLETTER), positions)
    print("\n" + tally.table("real broker (embedded Tansu)", time.monotonic() - started))
    assert_clean(tally)
