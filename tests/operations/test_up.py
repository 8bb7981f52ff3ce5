"""``feedback-miner up`` as an operator runs it: a subprocess with its own broker, store, ingest and Prefect.

Feedback sent to the HTTP ingest comes out enriched; a stage killed with SIGKILL
is restarted (restart count 1) and processes the next event; a killed embedded
broker is restarted with its topics provisioned again; the scheduled flows
are registered with the Prefect server (digest Monday 09:00 Asia/Shanghai,
health every minute) and health runs are scheduled; SIGINT ends everything with exit 0 and leaves no process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from consumers.kafka_io import read_topic
from topics.admin import admin_client, specs_for
from topics.embedded import free_port
from topics.schemas import EnrichedFeedback
from topics.serde import decode
from topics.settings import Settings
from topics.specs import ENRICHED

pytestmark = [pytest.mark.broker, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-up"


def _descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` (pid → command line), read from /proc."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = commands.get(pid, "")
                frontier.append(pid)
    return found


def _alive(pid: int, command: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return now == command and stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait(what: str, condition, timeout_s: float, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"up exited with {process.returncode} while waiting for {what}:\n{log.read_text()[-3000:]}")
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{log.read_text()[-3000:]}")


def _state(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _event(event_id: str, text: str) -> dict:
    return {"event_id": event_id, "channel": "app", "source": "up-test", "received_at": "2026-12-07T09:00:00+08:00",
            "customer": {"id": f"c-{event_id}"}, "payload": {"text": text, "rating": 1}}


def _enriched_ids(settings: Settings) -> set[str]:
    return {decode(EnrichedFeedback, r.value, list(r.headers or [])).event_id for r in read_topic(settings, ENRICHED, quiet_s=0.3)}


def test_up_runs_supervises_and_stops_cleanly(tmp_path: Path):
    broker_port, ingest_port, prefect_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FEEDBACK_MINER_", "PREFECT_"))},
        "FEEDBACK_MINER_DATA_DIR": str(tmp_path),
        "FEEDBACK_MINER_STORE__URL": f"sqlite:///{tmp_path / 'store.db'}",
        "FEEDBACK_MINER_CHANNELS__INGEST__TOKENS": json.dumps([TOKEN]),
        "FEEDBACK_MINER_CHANNELS__INGEST__PORT": str(ingest_port),
        "FEEDBACK_MINER_UP__RESTART_BACKOFF_INITIAL_S": "0.5",
        "FEEDBACK_MINER_UP__REFRESH_S": "0.5",
        "FEEDBACK_MINER_UP__STOP_GRACE_S": "20",
        "FEEDBACK_MINER_RUNTIME__BATCH_TIMEOUT_MS": "200",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    model_dir = Settings().model.dir  # the shared model cache (built once), not a fresh conversion
    env["FEEDBACK_MINER_MODEL__DIR"] = str(model_dir)
    log = tmp_path / "up.out"
    state_path = tmp_path / "up" / "state.json"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "up", "--no-live", "--broker-port", str(broker_port), "--prefect-port", str(prefect_port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    settings = Settings(kafka={"bootstrap_servers": f"127.0.0.1:{broker_port}"})
    seen: dict[int, str] = {}
    try:
        _wait("the ingest endpoint", lambda: _post_ok(ingest_port, _event("up-1", "快递三天了还没到，客服电话一直打不通")), 90, up, log)
        _wait("the first event enriched", lambda: "up-1" in _enriched_ids(settings), 180, up, log)

        first = _state(state_path)["children"]["normalizer"]
        assert first["running"] and first["restarts"] == 0
        seen.update(_descendants(up.pid))
        os.kill(first["pid"], signal.SIGKILL)
        restarted = _wait("the normalizer restarted", lambda: (lambda c: c if c.get("running") and c["pid"] != first["pid"] else None)(
            _state(state_path).get("children", {}).get("normalizer", {})), 30, up, log)
        assert restarted["restarts"] == 1
        assert "normalizer exited with code -9" in log.read_text()

        assert _post_ok(ingest_port, _event("up-2", "退款申请提交一周了，钱还没有退回到银行卡"))
        _wait("the second event enriched by the restarted normalizer", lambda: "up-2" in _enriched_ids(settings), 120, up, log)

        deployments = _wait("the scheduled deployments", lambda: _deployments(prefect_port), 120, up, log)
        assert deployments == {
            "weekly-theme-digest": ("0 9 * * 1", "Asia/Shanghai"),
            "pipeline-health": ("* * * * *", "Asia/Shanghai"),
        }
        # The local server runs without its scheduler (broken on SQLAlchemy 2.1); the flow runner schedules ahead.
        runs = _wait("scheduled health runs", lambda: _scheduled_runs(prefect_port), 60, up, log)
        assert all(minute.second == 0 for minute in runs) and len(runs) == len(set(runs))
        state = _state(state_path)
        assert {n for n, c in state["children"].items() if c["running"]} == {
            "broker", "normalizer", "enricher", "alerter", "ingest", "prefect-server", "flows"}
        assert all(c["restarts"] == 0 for n, c in state["children"].items() if n != "normalizer")

        # The embedded broker dies: up starts a new one on the same port and provisions the topics again.
        broker = state["children"]["broker"]
        seen.update(_descendants(up.pid))
        os.kill(broker["pid"], signal.SIGKILL)
        _wait("the broker restarted", lambda: (lambda c: c if c.get("running") and c["pid"] != broker["pid"] else None)(
            _state(state_path).get("children", {}).get("broker", {})), 30, up, log)
        _wait("the topics provisioned again", lambda: _topics(settings) >= {s.name for s in specs_for(settings)}, 30, up, log)
        # Stop only once every child runs: a child in its restart backoff has nothing to stop.
        _wait("every child running", lambda: _state(state_path).get("children", {}) and all(
            c["running"] for c in _state(state_path)["children"].values()), 60, up, log)

        seen.update(_descendants(up.pid))
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=90) == 0, log.read_text()[-3000:]
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    time.sleep(0.5)
    left = {pid: cmd for pid, cmd in seen.items() if _alive(pid, cmd)}
    assert left == {}, f"processes left behind: {left}"
    output = log.read_text()
    assert "stopping broker" in output and output.rstrip().endswith("stopped"), output[-3000:]
    # The broker stopped last, after every stage had stopped.
    stages = ("normalizer", "enricher", "alerter")
    assert all(f"stopping {s}" in output for s in stages), output[-3000:]
    assert output.index("stopping broker") > max(output.index(f"stopping {s}") for s in stages), output[-3000:]


def _topics(settings: Settings) -> set[str]:
    try:
        admin = admin_client(settings)
    except Exception:  # noqa: BLE001 - not listening yet
        return set()
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _post_ok(port: int, event: dict) -> bool:
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/v1/feedback", json=event, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    except httpx.HTTPError:
        return False
    assert response.status_code in (202, 503), response.text
    return response.status_code == 202


def _deployments(port: int) -> dict | None:
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/api/deployments/filter", json={}, timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    found = {d["name"]: (d["schedules"][0]["schedule"]["cron"], d["schedules"][0]["schedule"]["timezone"])
             for d in response.json() if d.get("schedules")}
    return found if len(found) >= 2 else None


def test_up_serves_the_schedules_that_the_deployment_file_declares():
    import yaml

    from pipelines.flows.serve import scheduled_deployments

    declared = {
        d["name"]: (d["schedules"][0]["cron"], d["schedules"][0]["timezone"], d["entrypoint"].rsplit(":", 1)[1])
        for d in yaml.safe_load((ROOT / "deploy/prefect.yaml").read_text(encoding="utf-8"))["deployments"] if d.get("schedules")
    }
    served = {d.name: (d.schedules[0].schedule.cron, d.schedules[0].schedule.timezone, d.entrypoint.rsplit(":", 1)[1])
              for d in scheduled_deployments(Settings())}
    assert served == declared == {
        "weekly-theme-digest": ("0 9 * * 1", "Asia/Shanghai", "weekly_digest_flow"),
        "pipeline-health": ("* * * * *", "Asia/Shanghai", "pipeline_health_flow"),
    }


def _scheduled_runs(port: int) -> list | None:
    """Expected start times of the flow runs created by schedule (idempotency key 'scheduled …')."""
    from datetime import datetime

    try:
        response = httpx.post(f"http://127.0.0.1:{port}/api/flow_runs/filter", json={}, timeout=5)
    except httpx.HTTPError:
        return None
    runs = [datetime.fromisoformat(r["expected_start_time"]) for r in response.json()
            if (r.get("idempotency_key") or "").startswith("scheduled ")]
    return runs or None


def test_the_live_view_shows_each_process_its_lag_throughput_and_the_counts(tmp_path: Path):
    from rich.console import Console

    from pipelines.cli.up import PipelineSnapshot, _plain_status, render
    from pipelines.service import ChildSpec, LocalService
    from pipelines.supervisor import Backoff

    clock = [100.0]
    service = LocalService([ChildSpec("broker", ["true"]), ChildSpec("enricher", ["true"])], Backoff(initial_s=4.0),
                           env={}, log_dir=tmp_path, stop_grace_s=1.0, clock=lambda: clock[0])
    service.supervisor.started("broker", 41, 40.0)
    service.supervisor.started("enricher", 42, 90.0)
    service.supervisor.exited("enricher", -9, 99.0)  # crashed: restart in 4 s
    snapshot = PipelineSnapshot(at=1.0, lags={"enricher": 1234}, rates={"enricher": 56.5}, deadletters=7, open_alerts=2)
    info = {"bootstrap_servers": "127.0.0.1:9", "log_dir": str(tmp_path), "ingest": "http://127.0.0.1:8080/v1/feedback", "prefect": None}
    screen = Console(record=True, width=120)
    screen.print(render(service, snapshot, info))
    text = screen.export_text()
    assert "broker" in text and "41" in text and "0:01:00" in text and "running" in text
    assert "restart in 3 s" in text and "1,234" in text and "56.5" in text
    assert "dead letters 7" in text and "open alerts 2" in text and "ingest http://127.0.0.1:8080/v1/feedback" in text
    assert _plain_status(service, snapshot) == (
        "broker (pid 41, up 0:01:00, restarts 0); enricher (down, up -, restarts 0, lag 1234, 56.5/s); dead letters 7; open alerts 2")
