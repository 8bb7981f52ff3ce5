"""End-to-end pipeline benchmark: real broker, every stage in its own process, a file SQLite store.

Phases, in one run:
1. warm-up: a few events through every stage (the group joins, the model loads);
2. maximum throughput: N events published as fast as the producer goes; raw → enriched is
   measured on the enriched topic's record timestamps, raw → alerts when the alerter's committed
   offsets cover everything the enricher produced;
3. the compute limit: the encoder (``FeedbackModel.predict``) alone on the same normalised texts,
   in the enricher's batches, while the stages sit idle;
4. latency: a paced publisher at a fixed share (half) of the measured maximum; publish → enriched
   from each event's publish time to its enriched record, publish → alert from the publish time of
   the event an alert event carries last (the one that raised or updated it) to the alert record.

The CPU seconds (from /proc) of each stage process, the embedded broker and the benchmark itself in
phase 2 give how far one instance of each goes on this machine.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from topics.settings import ENV_PREFIX, Settings
from topics.specs import ALERTS, DEADLETTER, ENRICHED, NORMALIZED, RAW

STAGE_NAMES = ("normalizer", "enricher", "alerter")
# Real texts per channel: app reviews (shopping, food delivery), Weibo posts, hotel reviews as e-mails.
CHANNEL_SOURCES = {
    "app": ("online_shopping_9_cats.csv", "waimai_10k.csv"),
    "social": ("weibo_emotion_virus.jsonl",),
    "email": ("chnsenticorp_train.csv",),
}
_BATCH_LINE = re.compile(r"stage (\w+) batch: (\d+) in, (\d+) out, (\d+) dead-lettered, (\d+) ms")

Log = Callable[[str], None]


# --- the workload ---------------------------------------------------------------------------


def load_channel_texts(data_dir: Path, min_chars: int = 4, max_chars: int = 400) -> dict[str, list[str]]:
    """Distinct real texts per channel from the shared data sets."""
    from consumers.normalizer.text_normalize import unescape_entities

    out: dict[str, list[str]] = {}
    for channel, files in CHANNEL_SOURCES.items():
        texts: list[str] = []
        for name in files:
            path = Path(data_dir) / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing (the shared data sets; setting shared_data)")
            if name.endswith(".jsonl"):
                raw = (json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
            else:
                with path.open(encoding="utf-8-sig", newline="") as f:
                    raw = [row.get("review") or "" for row in csv.DictReader(f)]
            texts.extend(" ".join(unescape_entities(t).split()) for t in raw)
        texts = [t for t in dict.fromkeys(texts) if min_chars <= len(t) <= max_chars]
        if channel == "social":
            # Posts of mentions, links and emoticons only are dead-lettered by design: keep ones with words.
            texts = [t for t in texts if len(_social_words(t)) >= min_chars]
        out[channel] = texts
    return out


def _social_words(text: str) -> str:
    from consumers.normalizer.social_channel import parse_social
    from topics.schemas import SocialPayload

    return parse_social(SocialPayload(text=text)).text.strip()


def build_events(texts: dict[str, list[str]], n: int, seed: int, prefix: str) -> list[dict]:
    """``n`` raw events, the channels in turn; each channel's texts shuffled (reused only past their count).

    Customers are distinct (a message alert is keyed by customer); one in twenty is a VIP.
    ``received_at`` is set when the event is published.
    """
    rng = random.Random(seed)
    pools = {channel: rng.sample(items, len(items)) for channel, items in texts.items()}
    channels = sorted(pools)
    events = []
    for i in range(n):
        channel = channels[i % len(channels)]
        pool = pools[channel]
        text = pool[(i // len(channels)) % len(pool)]
        customer = {"id": f"{prefix}c{i}"}
        if rng.random() < 0.05:
            customer["tier"] = "vip"
        if channel == "app":
            payload = {"text": text, "rating": rng.choice([1, 2, 3, 4, 5]), "app_version": "5.2.0", "os": rng.choice(["android", "ios"])}
        elif channel == "social":
            payload = {"text": text, "platform": "weibo", "reposts": int(rng.paretovariate(1.2)) - 1, "likes": int(rng.paretovariate(1.0)) - 1}
        else:
            payload = {"subject": "入住反馈", "body": text, "sender": f"{prefix}{i}@example.com"}
        events.append({"event_id": f"{prefix}{i}", "channel": channel, "source": "bench", "customer": customer, "payload": payload})
    return events


# --- processes ------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In a stage process: ask Linux to SIGTERM it when the benchmark dies, so none is left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class StageProcess:
    name: str
    process: subprocess.Popen
    log_path: Path
    # The stage's own pid (py-spy's child when profiled).
    pid: int

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _child_pid(pid: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError(f"py-spy (pid {pid}) started no stage process")


def start_stage(name: str, env: dict[str, str], log_path: Path, profile_to: Path | None = None) -> StageProcess:
    """``feedback-miner consume <name>`` as its own process (under ``py-spy record`` when profiled)."""
    command = [sys.executable, "-m", "pipelines", "consume", name]
    if profile_to is not None:
        py_spy = Path(sys.executable).with_name("py-spy")
        command = [str(py_spy), "record", "--format", "raw", "--rate", "50", "-o", str(profile_to), "--", *command]
    log_file = log_path.open("ab")
    process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)  # noqa: PLW1509 - started before any thread
    log_file.close()
    pid = _child_pid(process.pid) if profile_to is not None else process.pid
    return StageProcess(name, process, log_path, pid)


def stop_stage(stage: StageProcess, timeout_s: float = 60.0) -> None:
    """SIGTERM: the stage finishes its batch, commits and leaves (py-spy then writes its profile)."""
    if stage.alive():
        try:
            os.kill(stage.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            stage.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stage.process.kill()
            stage.process.wait()


# --- watching the output topics ---------------------------------------------------------------


@dataclass
class AlertRecord:
    timestamp_ms: int
    alert_id: str
    kind: str
    status: str
    last_sample: str | None


class BackgroundReader:
    """A daemon thread of the benchmark that reads the broker until stopped; its error surfaces in the waits."""

    thread_name = "bench-reader"

    def _init_thread(self) -> None:
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _raise_error(self, reading: str) -> None:
        if self.error is not None:
            raise RuntimeError(f"reading {reading} failed: {self.error}") from self.error

    def _run(self) -> None:
        raise NotImplementedError


@dataclass
class TopicRecorder(BackgroundReader):
    """Reads the enriched, alert and dead-letter topics from the start, in a thread of the benchmark."""

    thread_name = "bench-recorder"

    settings: Settings
    enriched_ms: dict[str, int] = field(default_factory=dict)  # event id → first enriched record's timestamp
    enriched_records: int = 0
    enriched_end: dict[int, int] = field(default_factory=dict)  # partition → last offset + 1
    enriched_at: dict[str, tuple[int, int]] = field(default_factory=dict)  # event id → (partition, offset)
    dead_letters: dict[str, str] = field(default_factory=dict)  # event id → reason
    alerts: list[AlertRecord] = field(default_factory=list)
    # Events out (enriched or dead-lettered, first time) per phase: the event id without its number.
    finished: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._init_thread()

    def _run(self) -> None:
        from kafka import TopicPartition

        from consumers.kafka_io import make_consumer

        consumer = make_consumer(self.settings, group_id=None, max_poll_records=2000)
        try:
            names = {self.settings.topic(t): t for t in (ENRICHED, ALERTS, DEADLETTER)}
            tps = [TopicPartition(physical, p) for physical in names for p in sorted(consumer.partitions_for_topic(physical) or ())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            while not self._stop.is_set():
                for tp, records in consumer.poll(timeout_ms=200).items():
                    with self.lock:
                        for record in records:
                            self._take(names[tp.topic], record)
        except BaseException as exc:  # noqa: BLE001 - reported by the waits of the benchmark
            self.error = exc
        finally:
            consumer.close()

    def _take(self, topic: str, record) -> None:
        value = json.loads(record.value)
        event_id = value.get("event_id")
        if topic in (ENRICHED, DEADLETTER) and event_id and event_id not in self.enriched_ms and event_id not in self.dead_letters:
            self.finished[event_id.rstrip("0123456789")] += 1
        if topic == ENRICHED:
            self.enriched_records += 1
            self.enriched_ms.setdefault(event_id, record.timestamp)
            self.enriched_at.setdefault(event_id, (record.partition, record.offset))
            self.enriched_end[record.partition] = max(self.enriched_end.get(record.partition, 0), record.offset + 1)
        elif topic == DEADLETTER:
            self.dead_letters[event_id or f"offset:{record.partition}:{record.offset}"] = value.get("reason", "")
        else:
            samples = value.get("samples") or []
            self.alerts.append(AlertRecord(record.timestamp, value["alert_id"], value["kind"], value["status"],
                                           samples[-1]["event_id"] if samples else None))

    def done(self, phase: str) -> int:
        """How many events of a phase (ids ``<phase><number>``) came out enriched or dead-lettered.

        A counter, not a scan of the ids: the waits poll it and must not take CPU from the stages."""
        self._raise_error("the output topics")
        with self.lock:
            return self.finished[phase]


class AlerterProgress(BackgroundReader):
    """The alerter group's committed offsets on the enriched topic, polled in a thread (OffsetFetch; joins no group).

    The alerter commits a batch only after its alerts were acknowledged: the first time a committed
    offset passes an event's enriched record is when the alerter was done with that event.
    """

    thread_name = "bench-alerter-offsets"

    def __init__(self, settings: Settings, interval_s: float = 0.25):
        self.settings = settings
        self.interval_s = interval_s
        self.history: dict[int, list[tuple[int, int]]] = {}  # partition → [(time ms, committed offset)], rising
        self._init_thread()

    def _run(self) -> None:
        from kafka import TopicPartition

        from consumers.kafka_io import make_consumer

        consumer = make_consumer(self.settings, group_id=self.settings.group_id("alerter"))
        topic = self.settings.topic(ENRICHED)
        try:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            while not self._stop.wait(self.interval_s):
                for tp in tps:
                    offset = consumer.committed(tp)
                    now = int(time.time() * 1000)
                    with self.lock:
                        points = self.history.setdefault(tp.partition, [])
                        if offset is not None and (not points or offset > points[-1][1]):
                            points.append((now, offset))
        except BaseException as exc:  # noqa: BLE001 - reported by caught_up
            self.error = exc
        finally:
            consumer.close()

    def caught_up(self, ends: dict[int, int]) -> bool:
        self._raise_error("the alerter's offsets")
        with self.lock:
            return all(self.history.get(p) and self.history[p][-1][1] >= end for p, end in ends.items())

    def done_ms(self, partition: int, offset: int) -> int | None:
        """When the alerter's commit first covered the record at ``offset``."""
        with self.lock:
            points = list(self.history.get(partition, ()))
        i = bisect.bisect_right([o for _, o in points], offset)
        return points[i][0] if i < len(points) else None


# --- publishing -----------------------------------------------------------------------------


def _raw_events(events: list[dict]):
    from topics.schemas import RawFeedback

    now = datetime.now(timezone.utc)
    return [RawFeedback.model_validate({**e, "received_at": now}) for e in events]


def publish(producer, settings: Settings, events: list[dict], rate: float | None = None) -> dict[str, int]:
    """Publish raw events (as fast as possible, or paced at ``rate`` per second); returns event id → publish time (ms).

    ``received_at`` is the publish time, as a live integration stamps it."""
    from consumers.kafka_io import send

    topic = settings.topic(RAW)
    raws = _raw_events(events)
    published: dict[str, int] = {}
    started = time.monotonic()
    for i, raw in enumerate(raws):
        if rate is not None:
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        now = time.time()
        raw = raw.model_copy(update={"received_at": datetime.fromtimestamp(now, timezone.utc)})
        published[raw.event_id] = int(now * 1000)
        send(producer, topic, raw, raw.key())
    producer.flush(timeout=settings.kafka.request_timeout_ms / 1000)
    return published


# --- measuring ------------------------------------------------------------------------------


def percentiles(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"n": 0}
    a = np.asarray(values_ms, dtype=float)
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1)}


def stage_batches(log_path: Path, start: int, end: int | None = None) -> dict:
    """The runtime's batch lines between two byte offsets of a stage's log: events, batches, batch time."""
    with log_path.open("rb") as f:
        f.seek(start)
        text = f.read(None if end is None else end - start).decode("utf-8", "replace")
    events = batches = 0
    ms = 0
    for match in _BATCH_LINE.finditer(text):
        batches += 1
        events += int(match.group(2))
        ms += int(match.group(5))
    return {"batches": batches, "events": events, "batch_seconds": round(ms / 1000, 2)}


def measure_model(settings: Settings, texts: list[str], log: Log) -> dict:
    """The encoder alone on ``texts``, in the enricher's batches (runtime batch size, model batch size)."""
    from pipelines.enrichment import production_model

    model = production_model(settings)
    chunk = settings.runtime.batch_size
    model.predict(texts[:chunk], batch_size=settings.model.batch_size)  # warm-up, not counted
    cpu0 = time.process_time()
    started = time.perf_counter()
    for i in range(0, len(texts), chunk):
        model.predict(texts[i : i + chunk], batch_size=settings.model.batch_size)
    seconds = time.perf_counter() - started
    log(f"model alone: {len(texts)} texts in {seconds:.1f} s")
    return {"texts": len(texts), "seconds": round(seconds, 2), "per_s": round(len(texts) / seconds, 1),
            "cpu_seconds": round(time.process_time() - cpu0, 2), "chunk": chunk, "batch_size": settings.model.batch_size,
            "num_threads": settings.model.num_threads, "quantize": settings.model.quantize}


def _normalized_texts(settings: Settings, event_ids: set[str]) -> list[str]:
    from consumers.enricher.stage import model_text
    from consumers.kafka_io import read_topic
    from topics.schemas import NormalizedFeedback

    texts = []
    for record in read_topic(settings, NORMALIZED, timeout_s=120):
        event = NormalizedFeedback.model_validate_json(record.value)
        if event.event_id in event_ids and model_text(event):
            texts.append(model_text(event))
    return texts


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    import onnxruntime

    return {"cpu": cpu, "cores": os.cpu_count(), "avx512_vnni": "avx512_vnni" in flags, "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "platform": platform.platform()}


def _embedded_broker_pid(bootstrap_servers: str) -> int | None:
    """The pid of the embedded Tansu listening on this address (None for another broker)."""
    needle = f"tcp://{bootstrap_servers}".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes() and b"tansu" in (proc / "cmdline").read_bytes():
                    return int(proc.name)
            except OSError:
                continue
    return None


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the benchmark --------------------------------------------------------------------------


@dataclass
class PipelineBenchOptions:
    events: int = 20_000
    # Offered load of the latency phase, as a share of the measured maximum.
    load_share: float = 0.5
    latency_seconds: float = 60.0
    min_latency_events: int = 200
    # Texts the model alone is timed on (the phase-2 texts, from the first); None: all of them.
    model_texts: int | None = None
    warmup_events: int = 64
    seed: int = 18
    timeout_s: float = 1800.0
    profile_enricher: Path | None = None
    workdir: Path | None = None


class _Run:
    """One benchmark run: the broker session, the stage processes, the recorder."""

    def __init__(self, settings: Settings, options: PipelineBenchOptions, workdir: Path, log: Log):
        self.settings, self.options, self.workdir, self.log = settings, options, workdir, log
        self.stages: dict[str, StageProcess] = {}

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               f"{ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers,
               f"{ENV_PREFIX}KAFKA__TOPIC_PREFIX": s.kafka.topic_prefix,
               f"{ENV_PREFIX}KAFKA__GROUP_PREFIX": s.kafka.group_prefix,
               f"{ENV_PREFIX}STORE__URL": s.store.url,
               f"{ENV_PREFIX}DATA_DIR": str(self.workdir),
               f"{ENV_PREFIX}RUNTIME__LOG_LEVEL": "INFO"}
        return env

    def check_alive(self) -> None:
        for stage in self.stages.values():
            if not stage.alive():
                raise RuntimeError(f"stage {stage.name} exited with {stage.process.returncode}:\n{stage.log_tail()}")

    def wait(self, what: str, condition: Callable[[], bool], timeout_s: float) -> float:
        """Poll until ``condition``; returns the wall time it first held (time.time())."""
        deadline = time.monotonic() + timeout_s
        while True:
            if condition():
                return time.time()
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not done after {timeout_s:.0f} s")
            time.sleep(0.2)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each stage, the embedded broker and this process (publisher and readers)."""
        used = {name: cpu_seconds(stage.pid) for name, stage in self.stages.items()}
        broker = _embedded_broker_pid(self.settings.kafka.bootstrap_servers)
        if broker is not None:
            used["broker"] = cpu_seconds(broker)
        used["benchmark"] = time.process_time()
        return used

    def log_offsets(self) -> dict[str, int]:
        return {name: stage.log_path.stat().st_size for name, stage in self.stages.items()}


def run_pipeline_benchmark(settings: Settings, options: PipelineBenchOptions, log: Log = print) -> dict:
    """Run the benchmark (module docstring) and return its report."""
    from consumers.kafka_io import make_producer
    from pipelines.kafka_session import kafka_session

    load_start = _load()
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    texts = load_channel_texts(settings.shared_data)
    tag = f"b{os.getpid()}x{int(time.time()) % 100000}"
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(options.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        base = settings.model_copy(update={
            "kafka": settings.kafka.model_copy(update={"topic_prefix": f"{settings.kafka.topic_prefix}{tag}.", "group_prefix": tag}),
            "store": settings.store.model_copy(update={"url": f"sqlite:///{workdir / 'store.db'}"}),
            "data_dir": workdir,
        })
        with kafka_session(base) as live:
            return _benchmark(_Run(live, options, workdir, log), texts, make_producer, load_start, date, tag)


def _benchmark(run: _Run, texts: dict[str, list[str]], make_producer, load_start: list[float], date: str, tag: str) -> dict:
    s, options, log = run.settings, run.options, run.log
    recorder = progress = producer = None
    try:
        # The stage processes first: forking is safe before this process starts its Kafka threads.
        env = run.env()
        for name in STAGE_NAMES:
            profile = options.profile_enricher if name == "enricher" else None
            run.stages[name] = start_stage(name, env, run.workdir / f"{name}.log", profile)
        recorder = TopicRecorder(s).start()
        progress = AlerterProgress(s).start()
        producer = make_producer(s)

        def alerter_done() -> bool:
            with recorder.lock:
                ends = dict(recorder.enriched_end)
            return bool(ends) and progress.caught_up(ends)

        # 1. warm-up: groups joined, model loaded.
        warm = build_events(texts, options.warmup_events, options.seed + 1, f"{tag}w")
        publish(producer, s, warm)
        run.wait("warm-up", lambda: recorder.done(f"{tag}w") == len(warm), 600)
        run.wait("warm-up (alerter)", alerter_done, 300)
        log(f"warm-up done: {len(warm)} events through every stage")

        # 2. maximum throughput.
        events = build_events(texts, options.events, options.seed, f"{tag}e")
        ids = [e["event_id"] for e in events]
        cpu0, logs0, t0 = run.cpu(), run.log_offsets(), time.time()
        published = publish(producer, s, events)
        publish_s = time.time() - t0
        log(f"published {len(published)} events in {publish_s:.1f} s; waiting for the stages")
        run.wait("throughput phase (enriched)", lambda: recorder.done(f"{tag}e") == len(ids), options.timeout_s)
        alerts_done_at = run.wait("throughput phase (alerter)", alerter_done, options.timeout_s)
        cpu1, logs1 = run.cpu(), run.log_offsets()
        first_publish_ms = min(published.values())
        with recorder.lock:
            enriched_ms = [recorder.enriched_ms[e] for e in ids if e in recorder.enriched_ms]
            dead = {e: recorder.dead_letters[e] for e in ids if e in recorder.dead_letters}
        enriched_s = (max(enriched_ms) - first_publish_ms) / 1000
        alerts_s = alerts_done_at - first_publish_ms / 1000
        throughput = {
            "events": len(ids), "enriched": len(enriched_ms), "dead_lettered": len(dead),
            "dead_letter_reasons": dict(sorted({r: list(dead.values()).count(r) for r in set(dead.values())}.items())),
            "publish_seconds": round(publish_s, 2), "publish_per_s": round(len(ids) / publish_s, 1),
            "raw_to_enriched_seconds": round(enriched_s, 2), "raw_to_enriched_per_s": round(len(enriched_ms) / enriched_s, 1),
            "raw_to_alerts_seconds": round(alerts_s, 2), "raw_to_alerts_per_s": round(len(ids) / alerts_s, 1),
        }
        log(f"throughput: raw → enriched {throughput['raw_to_enriched_per_s']}/s, raw → alerts {throughput['raw_to_alerts_per_s']}/s")
        stages = {}
        for name in cpu1:
            cpu = cpu1[name] - cpu0[name]
            batches = {}
            if name in run.stages:
                batches = {**stage_batches(run.stages[name].log_path, logs0[name], logs1[name]), "peak_rss_mb": peak_rss_mb(run.stages[name].pid)}
            stages[name] = {**batches, "cpu_seconds": round(cpu, 2),
                            "cpu_ms_per_event": round(1000 * cpu / len(ids), 3),
                            # Events per second of one core's CPU time: how far one instance goes with a core to itself.
                            "events_per_cpu_second": round(len(ids) / cpu, 1) if cpu else None}

        # 3. the compute limit, on the same texts, while the stages sit idle.
        model_texts = _normalized_texts(s, set(ids))
        if options.model_texts:
            model_texts = model_texts[: options.model_texts]
        model = measure_model(s, model_texts, log)

        # 4. latency at a fixed share of the maximum.
        rate = options.load_share * min(throughput["raw_to_enriched_per_s"], throughput["raw_to_alerts_per_s"])
        count = max(options.min_latency_events, int(rate * options.latency_seconds))
        paced = build_events(texts, count, options.seed + 2, f"{tag}l")
        paced_ids = [e["event_id"] for e in paced]
        alerts_before = len(recorder.alerts)
        progress.interval_s = 0.05  # per-event alerter times need a fine clock; the throughput phase a light one
        log(f"latency phase: {count} events at {rate:.1f}/s")
        t_paced = time.time()
        published_paced = publish(producer, s, paced, rate=rate)
        achieved = count / (time.time() - t_paced)
        run.wait("latency phase (enriched)", lambda: recorder.done(f"{tag}l") == len(paced_ids), options.timeout_s)
        run.wait("latency phase (alerter)", alerter_done, options.timeout_s)
        time.sleep(1.0)  # the alerts of the last batch reach the recorder
        with recorder.lock:
            to_enriched = [recorder.enriched_ms[e] - published_paced[e] for e in paced_ids if e in recorder.enriched_ms]
            seen: set[tuple[str, str]] = set()
            to_alert = []
            for alert in recorder.alerts[alerts_before:]:
                trigger = alert.last_sample
                # The first alert event carrying an event as its newest sample is the one that event raised or updated.
                if trigger in published_paced and (alert.alert_id, trigger) not in seen:
                    seen.add((alert.alert_id, trigger))
                    to_alert.append(alert.timestamp_ms - published_paced[trigger])
            alert_kinds = sorted({a.kind for a in recorder.alerts})
            positions = {e: recorder.enriched_at[e] for e in paced_ids if e in recorder.enriched_at}
        to_alerter = []
        for e, (partition, offset) in positions.items():
            done = progress.done_ms(partition, offset)
            if done is not None:
                to_alerter.append(done - published_paced[e])
            alerts_total = len(recorder.alerts)
        latency = {"offered_per_s": round(rate, 1), "achieved_per_s": round(achieved, 1), "events": count,
                   "publish_to_enriched": percentiles(to_enriched), "publish_to_alert": percentiles(to_alert),
                   "publish_to_alerter_committed": percentiles(to_alerter),
                   "alerter_offsets_poll_ms": int(progress.interval_s * 1000)}
        log(f"latency p95: enriched {latency['publish_to_enriched'].get('p95_ms')} ms, alerter done "
            f"{latency['publish_to_alerter_committed'].get('p95_ms')} ms, alerts {latency['publish_to_alert'].get('p95_ms')} ms")
    finally:
        for stage in reversed(list(run.stages.values())):
            stop_stage(stage)
        if producer is not None:
            producer.close()
        for watcher in (progress, recorder):
            if watcher is not None:
                watcher.stop()

    ratio = throughput["raw_to_enriched_per_s"] / model["per_s"]
    # Every event's alerts are on the topic before the alerter commits it: the commit bounds the alert latency.
    alert_p95 = latency["publish_to_alerter_committed"].get("p95_ms")
    summary = {
        "events": options.events,
        "raw_to_enriched_per_s": throughput["raw_to_enriched_per_s"],
        "raw_to_alerts_per_s": throughput["raw_to_alerts_per_s"],
        "model_alone_per_s": model["per_s"],
        "ratio_pipeline_to_model": round(ratio, 3),
        # The same comparison in CPU time, which the other jobs on a shared machine sway far less than wall time:
        # the model's CPU per text ÷ the enricher process's CPU per event (1.0: the stage costs nothing beyond the model).
        "enricher_cpu_efficiency": round(1000 * model["cpu_seconds"] / model["texts"] / stages["enricher"]["cpu_ms_per_event"], 3),
        "offered_per_s": latency["offered_per_s"],
        "publish_to_enriched_p50_p95_p99_ms": [latency["publish_to_enriched"].get(k) for k in ("p50_ms", "p95_ms", "p99_ms")],
        "publish_to_alerter_committed_p50_p95_p99_ms": [latency["publish_to_alerter_committed"].get(k) for k in ("p50_ms", "p95_ms", "p99_ms")],
        "publish_to_alert_p50_p95_p99_ms": [latency["publish_to_alert"].get(k) for k in ("p50_ms", "p95_ms", "p99_ms")],
        "alerts_timed": latency["publish_to_alert"]["n"],
        "goal_ratio_at_least_0_9": ratio >= 0.9,
        "goal_alert_p95_at_most_1s": alert_p95 is not None and alert_p95 <= 1000,
        "load_start_end": [load_start, _load()],
    }
    return {
        "summary": summary,
        "throughput": throughput,
        "latency": latency,
        "model": model,
        "processes": stages,
        "alerts": {"published": alerts_total, "kinds": alert_kinds},
        "profile": str(options.profile_enricher) if options.profile_enricher else None,
        "settings": {
            "runtime": s.runtime.model_dump(mode="json", include={"batch_size", "batch_timeout_ms"}),
            "model": s.model.model_dump(mode="json", include={"quantize", "batch_size", "num_threads", "max_batch_tokens", "max_length"}),
            "kafka": {"broker": "embedded Tansu (memory)" if not os.environ.get(f"{ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS") else "configured",
                      "partitions": s.kafka.default_partitions},
            "store": "SQLite file (one per run)",
            "stage_processes": list(STAGE_NAMES),
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.__dict__.items()},
        },
        "data": {"sources": CHANNEL_SOURCES, "texts_per_channel": {c: len(t) for c, t in texts.items()}},
        "machine": machine(),
        "load": {"start": load_start, "end": _load()},
        "date": date,
    }
