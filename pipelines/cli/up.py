"""``feedback-miner up``: the whole pipeline as one supervised local service, on one screen.

Starts the embedded broker (or uses ``FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS``),
provisions the topics, runs every stage, the HTTP ingest and the scheduled Prefect
flows as supervised children (``pipelines/service.py``) and shows their state,
consumer lag, throughput, dead letters and open alerts until Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.cli.common import cli_errors, console, settings
from topics.settings import ENV_PREFIX, Settings

up_app = typer.Typer()
log = logging.getLogger("feedback_miner.up")


@dataclass
class PipelineSnapshot:
    """What the probe thread last read; ``error`` when the broker or store did not answer."""

    at: float = 0.0
    lags: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    deadletters: int | None = None
    open_alerts: int | None = None
    error: str | None = None


class PipelineProbe(threading.Thread):
    """Reads lag, throughput, dead letters and open alerts every ``interval_s``, off the supervision loop
    (a broker that is down must not stall restarts)."""

    def __init__(self, settings: Settings, interval_s: float):
        super().__init__(name="pipeline-probe", daemon=True)
        self.settings, self.interval_s = settings, interval_s
        self.snapshot = PipelineSnapshot()
        self._stopping = threading.Event()
        self._committed: dict[str, tuple[float, int]] = {}

    def run(self) -> None:
        from consumers.store import make_engine

        engine = make_engine(self.settings.store.url)
        admin = None
        while not self._stopping.is_set():
            try:
                admin = admin or self._admin()
                self.snapshot = self._read(admin, engine)
            except Exception as exc:  # noqa: BLE001 - shown on screen, retried next time
                self.snapshot = PipelineSnapshot(time.monotonic(), self.snapshot.lags, {}, self.snapshot.deadletters,
                                                 self.snapshot.open_alerts, f"{type(exc).__name__}: {exc}"[:200])
                if admin is not None:
                    admin.close()
                    admin = None
            self._stopping.wait(self.interval_s)
        if admin is not None:
            admin.close()
        engine.dispose()

    def _admin(self):
        from topics.admin import admin_client

        return admin_client(self.settings)

    def _read(self, admin, engine) -> PipelineSnapshot:
        from pipelines.pipeline_probe import deadletter_count, open_alert_count, stage_lags

        now = time.monotonic()
        lags = stage_lags(admin, self.settings, self.settings.health.stages)
        rates = {}
        for name, lag in lags.items():
            before = self._committed.get(name)
            if before is not None and lag.committed >= before[1] and now > before[0]:
                rates[name] = (lag.committed - before[1]) / (now - before[0])
            self._committed[name] = (now, lag.committed)
        try:
            alerts = open_alert_count(engine)
        except Exception:  # noqa: BLE001 - a store not migrated yet (the stages migrate it at start)
            alerts = None
        return PipelineSnapshot(now, {k: v.lag for k, v in lags.items()}, rates, deadletter_count(admin, self.settings), alerts)

    def stop(self) -> None:
        self._stopping.set()


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def state_json(service, snapshot: PipelineSnapshot, info: dict) -> dict:
    """The machine-readable state, written to ``data_dir/up/state.json`` (scripts and the tests read it)."""
    now = service.clock()
    children = {
        name: {"pid": child.pid, "running": child.running, "restarts": child.restarts, "uptime_s": child.uptime(now),
               "last_exit_code": child.last_exit_code}
        for name, child in service.supervisor.children.items()
    }
    return {"pid": os.getpid(), **info, "children": children, "lags": snapshot.lags, "rates": snapshot.rates,
            "deadletters": snapshot.deadletters, "open_alerts": snapshot.open_alerts, "probe_error": snapshot.error}


def render(service, snapshot: PipelineSnapshot, info: dict):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = service.clock()
    table = Table(title=f"feedback-miner up · broker {info['bootstrap_servers']}", title_justify="left", expand=False)
    for column in ("process", "pid", "state", "uptime", "restarts", "lag", "processed/s"):
        table.add_column(column, justify="left" if column in ("process", "state") else "right")
    for name, child in service.supervisor.children.items():
        if child.running:
            state = Text("running", style="green")
        elif child.start_at is not None:
            state = Text(f"restart in {max(0.0, child.start_at - now):.0f} s", style="yellow")
        else:
            state = Text("stopped", style="dim")
        lag = snapshot.lags.get(name)
        rate = snapshot.rates.get(name)
        table.add_row(name, str(child.pid or "-"), state, _uptime(child.uptime(now)),
                      Text(str(child.restarts), style="bold red" if child.restarts else ""),
                      "-" if lag is None else f"{lag:,}", "-" if rate is None else f"{rate:.1f}")
    footer = Text()
    footer.append(f"dead letters {snapshot.deadletters if snapshot.deadletters is not None else '-'}", style="yellow")
    footer.append(f" · open alerts {snapshot.open_alerts if snapshot.open_alerts is not None else '-'}", style="bold")
    for label in ("ingest", "prefect"):
        if info.get(label):
            footer.append(f" · {label} {info[label]}")
    footer.append(f"\nlogs {info['log_dir']} · Ctrl-C stops everything", style="dim")
    if snapshot.error:
        footer.append(f"\nprobe: {snapshot.error}", style="red")
    for event in service.events:
        footer.append(f"\n{event}", style="yellow")
    return Group(table, footer)


def _plain_status(service, snapshot: PipelineSnapshot) -> str:
    now = service.clock()
    parts = []
    for name, child in service.supervisor.children.items():
        bits = [f"pid {child.pid}" if child.running else "down", f"up {_uptime(child.uptime(now))}", f"restarts {child.restarts}"]
        if name in snapshot.lags:
            bits.append(f"lag {snapshot.lags[name]}")
        if name in snapshot.rates:
            bits.append(f"{snapshot.rates[name]:.1f}/s")
        parts.append(f"{name} ({', '.join(bits)})")
    return "; ".join(parts) + f"; dead letters {snapshot.deadletters}; open alerts {snapshot.open_alerts}"


def _specs(s: Settings, bootstrap: str, broker_port: int | None, prefect_port: int | None, ingest_on: bool) -> list:
    import sys

    from pipelines.service import BROKER, FLOWS, INGEST, PREFECT_SERVER, ChildSpec, embedded_broker_argv, provision_topics, wait_for_port

    live = s.model_copy(update={"kafka": s.kafka.model_copy(update={"bootstrap_servers": bootstrap})})
    specs: list[ChildSpec] = []
    after = None
    if broker_port is not None:
        def broker_started() -> None:
            # A new embedded broker knows no topics: provision them before the stages count on them.
            wait_for_port(broker_port, timeout_s=15.0)
            provision_topics(live)

        # Tier 9: stopped last, after every stage committed its last batch.
        specs.append(ChildSpec(BROKER, embedded_broker_argv(broker_port), tier=9, on_started=broker_started))
        after = BROKER
    from pipelines.stages import STAGES

    for stage in STAGES:  # every registered stage, in pipeline order
        specs.append(ChildSpec(stage, [sys.executable, "-m", "pipelines", "consume", stage], after=after))
    if ingest_on:
        specs.append(ChildSpec(INGEST, [sys.executable, "-m", "pipelines", "serve", "ingest"], after=after))
    if prefect_port is not None:
        # Stopped after the flow runner, which pauses its schedules through it on the way out.
        specs.append(ChildSpec(PREFECT_SERVER, [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                                "--port", str(prefect_port), "--analytics-off", "--no-scheduler"],
                               tier=5, env={"PREFECT_HOME": str(s.data_dir / "prefect")}))
    if s.up.flows:
        # Our own server runs without its scheduler (pipelines/flows/serve.py says why): the runner schedules.
        argv = [sys.executable, "-m", "pipelines.flows.serve"] + (["--schedule-runs"] if prefect_port is not None else [])
        specs.append(ChildSpec(FLOWS, argv, after=after))
    return specs


@up_app.command("up")
def up(
    live_view: Annotated[bool, typer.Option("--live/--no-live", help="The live screen (default on a terminal), or plain log lines.")] = None,
    broker_port: Annotated[Optional[int], typer.Option(help="Port of the embedded broker (default: a free one); ignored with FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS.")] = None,
    prefect_port: Annotated[Optional[int], typer.Option(help="Port of the local Prefect server (default: a free one); ignored with PREFECT_API_URL.")] = None,
    flows: Annotated[Optional[bool], typer.Option("--flows/--no-flows", help="Serve the scheduled flows (default: up.flows).")] = None,
) -> None:
    """Run the whole pipeline as a supervised service: broker, every stage, ingest, scheduled flows; Ctrl-C stops it."""
    _run_up(live_view, broker_port, prefect_port, flows)


@cli_errors
def _run_up(live_view: bool | None, broker_port: int | None, prefect_port: int | None, flows: bool | None) -> None:
    from pipelines.service import LocalService, child_env
    from pipelines.supervisor import Backoff
    from topics.admin import check_broker, ensure_topics
    from topics.embedded import free_port

    s = settings()
    if flows is not None:
        s = s.model_copy(update={"up": s.up.model_copy(update={"flows": flows})})
    if s.kafka.bootstrap_servers:
        check_broker(s)  # exit 3 at once when the configured cluster does not answer
        ensure_topics(s)
        bootstrap, embedded_port = s.kafka.bootstrap_servers, None
    else:
        embedded_port = broker_port or free_port()
        bootstrap = f"127.0.0.1:{embedded_port}"
    live_settings = s.model_copy(update={"kafka": s.kafka.model_copy(update={"bootstrap_servers": bootstrap})})

    prefect_api = os.environ.get("PREFECT_API_URL") if s.up.flows else None
    own_prefect_port = None
    if s.up.flows and not prefect_api:
        own_prefect_port = prefect_port or free_port()
        prefect_api = f"http://127.0.0.1:{own_prefect_port}/api"
    tokens = any(t.get_secret_value() for t in s.channels.ingest.tokens)
    ingest_on = s.up.ingest and tokens
    if s.up.ingest and not tokens:
        log.warning("HTTP ingest not started: no token configured (%sCHANNELS__INGEST__TOKENS)", ENV_PREFIX)

    log_dir = s.data_dir / "logs" / "up"
    service = LocalService(_specs(s, bootstrap, embedded_port, own_prefect_port, ingest_on), Backoff.from_settings(s.up),
                           child_env(s, bootstrap, prefect_api), log_dir, s.up.stop_grace_s)
    info = {
        "bootstrap_servers": bootstrap,
        "ingest": f"http://{s.channels.ingest.host}:{s.channels.ingest.port}/v1/feedback" if ingest_on else None,
        "prefect": prefect_api.removesuffix("/api") if prefect_api else None,
        "log_dir": str(log_dir),
    }
    state_path = s.data_dir / "up" / "state.json"
    state_path.parent.mkdir(parents=True, exist_ok=True)

    interrupts = []

    def on_signal(signum, _frame) -> None:
        interrupts.append(signum)
        if len(interrupts) > 1:
            service.kill_all()  # a second Ctrl-C: no more waiting

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    probe = PipelineProbe(live_settings, s.up.refresh_s)
    use_live = console.is_terminal if live_view is None else live_view
    if embedded_port is not None:
        console.print(f"embedded broker on [bold]{bootstrap}[/]; in another shell:\n  export {ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS={bootstrap}")
    else:
        console.print(f"Kafka at [bold]{bootstrap}[/]")
    try:
        service.tick()  # the broker first: the probe needs it
        probe.start()
        if use_live:
            _loop_live(service, probe, info, state_path, s.up.refresh_s, interrupts)
        else:
            _loop_plain(service, probe, info, state_path, s.up, interrupts)
    finally:
        console.print("stopping: stages finish their batch, then the broker stops")
        probe.stop()
        service.shutdown()
        probe.join(timeout=5)
        _write_state(state_path, state_json(service, probe.snapshot, info))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopped")


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def _loop_live(service, probe: PipelineProbe, info: dict, state_path: Path, refresh_s: float, interrupts: list) -> None:
    from rich.live import Live

    with Live(render(service, probe.snapshot, info), console=console, refresh_per_second=4, transient=False) as screen:
        next_draw = 0.0
        while not interrupts:
            service.tick()
            if time.monotonic() >= next_draw:
                screen.update(render(service, probe.snapshot, info))
                _write_state(state_path, state_json(service, probe.snapshot, info))
                next_draw = time.monotonic() + refresh_s
            time.sleep(0.1)


def _loop_plain(service, probe: PipelineProbe, info: dict, state_path: Path, up_settings, interrupts: list) -> None:
    for key in ("ingest", "prefect"):
        if info.get(key):
            console.print(f"{key}: {info[key]}")
    console.print(f"logs: {info['log_dir']}; state: {state_path}")
    next_state = next_status = 0.0
    while not interrupts:
        service.tick()
        now = time.monotonic()
        if now >= next_state:
            _write_state(state_path, state_json(service, probe.snapshot, info))
            next_state = now + up_settings.refresh_s
        if now >= next_status:
            if probe.snapshot.at:
                console.print(_plain_status(service, probe.snapshot), soft_wrap=True)
            next_status = now + up_settings.status_every_s
        time.sleep(0.1)


@up_app.command("health")
def health() -> None:
    """One pipeline health check now (what the pipeline-health flow runs every minute): lag, dead letters, stalls,
    store and model; publishes health alerts like the flow. Exit 0 when nothing fires, 1 otherwise."""

    @cli_errors
    def check() -> int:
        from pipelines.cli.common import require_broker
        from pipelines.flows.health import run_health_check

        s = settings()
        require_broker(s, "health")
        report = run_health_check(s)
        lags = ", ".join(f"{name} {lag:,}" for name, lag in report.lags.items())
        console.print(f"lag: {lags}; dead letters {report.deadletters}; store {'[red]' + report.store_error + '[/]' if report.store_error else 'ok'}"
                      + ("; model checked" if report.model_checked else ""), soft_wrap=True, highlight=False)
        for alert in report.published:
            console.print(f"[bold]{alert.status.value}[/] {alert.priority.value} {alert.key}: {alert.title} (id {alert.alert_id} r{alert.revision})",
                          soft_wrap=True, highlight=False)
        console.print(f"[red]firing: {', '.join(report.firing)}[/]" if report.firing else "[green]healthy[/]")
        return 1 if report.firing else 0

    code = check()
    if code:
        raise typer.Exit(code)
