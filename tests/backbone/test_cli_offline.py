"""Every command that needs a broker says so in one line when there is none.

The commands are enumerated from the Typer app, not listed by hand: a command needs the broker
when its code reaches a Kafka entry point (``require_broker``, ``check_broker``, ``kafka_session``,
a producer, a consumer or an admin client), followed through the functions of this project it
calls, including those imported inside the function. A new command is covered the day it is added.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import pytest
import typer.main

from pipelines.cli import app
from topics.embedded import free_port

OURS = ("pipelines.", "consumers.", "topics.", "models.")
# Calling one of these needs a configured broker; reaching ``require_broker`` also means the command has
# no embedded fallback (without bootstrap servers it refuses at once, exit 2).
REFUSES_WITHOUT_BROKER = {"pipelines.cli.common.require_broker"}
TALKS_TO_BROKER = REFUSES_WITHOUT_BROKER | {
    "topics.admin.check_broker", "topics.admin.admin_client", "topics.admin.ensure_topics",
    "pipelines.kafka_session.kafka_session", "consumers.kafka_io.make_producer", "consumers.kafka_io.make_consumer",
}
# ``broker`` is the embedded broker itself: it never connects to a configured one.
IS_THE_BROKER = {("broker",)}
# A value for each required parameter and each positional argument, by name: enough to reach the broker check.
PLACEHOLDERS = {"event_id": "E-0", "file": "-", "topic": "feedback.raw", "stage": "normalizer", "alert_id": "A-0", "week": "2026-W47",
                "task": "sentiment", "data": "missing.jsonl", "out": "out.jsonl"}


def _leaf_commands() -> dict[tuple[str, ...], object]:
    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path, command

    return dict(walk(typer.main.get_command(app), ()))


def _qualified(obj) -> str | None:
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{name}" if module and name else None


@lru_cache(maxsize=None)
def _calls(function) -> tuple:
    """The functions of ours that ``function`` calls by name (also those imported inside it)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError):
        return ()
    local_imports: dict[str, tuple[str, str]] = {}  # name -> (module, attribute), from imports inside the function
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                local_imports[alias.asname or alias.name] = (node.module, alias.name)
    called = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id in local_imports:
            module_name, attr = local_imports[node.func.id]
            try:
                obj = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError):
                continue
        else:
            obj = function.__globals__.get(node.func.id)
        obj = inspect.unwrap(obj) if callable(obj) else obj
        if inspect.isfunction(obj) and (_qualified(obj) or "").startswith(OURS):
            called.append(obj)
    return tuple(called)


def _reaches(callback, depth: int = 8) -> frozenset[str]:
    """The Kafka entry points reachable from ``callback`` through the functions of ours it calls."""
    found: set[str] = set()
    seen: set[str] = set()
    frontier = [inspect.unwrap(callback)]
    for _ in range(depth):
        following = []
        for function in frontier:
            for called in _calls(function):
                name = _qualified(called)
                if name in seen:
                    continue
                seen.add(name)
                if name in TALKS_TO_BROKER:
                    found.add(name)
                else:
                    following.append(called)
        frontier = following
    return frozenset(found)


def _broker_commands() -> dict[tuple[str, ...], frozenset[str]]:
    commands = {path: _reaches(command.callback) for path, command in _leaf_commands().items()}
    return {path: reached for path, reached in commands.items() if reached and path not in IS_THE_BROKER}


def _args(path: tuple[str, ...]) -> list[str]:
    """The command with a placeholder for each required parameter and positional argument."""
    args = list(path)
    for param in _leaf_commands()[path].params:
        if not param.required and not (param.param_type_name == "argument" and param.name in PLACEHOLDERS):
            continue
        if param.name not in PLACEHOLDERS:
            pytest.fail(f"'{' '.join(path)}': add a placeholder for its required parameter {param.name!r} to PLACEHOLDERS")
        args += [PLACEHOLDERS[param.name]] if param.param_type_name == "argument" else [param.opts[0], PLACEHOLDERS[param.name]]
    return args


def _run(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], env=env, cwd=cwd, capture_output=True, timeout=120, input=b"")


def _offline_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MINER_")}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # A token, so that 'serve ingest' gets as far as the broker check.
    env.update({"FEEDBACK_MINER_DATA_DIR": str(tmp_path), "FEEDBACK_MINER_CHANNELS__INGEST__TOKENS": '["offline-test"]',
                "PYTHONPATH": repo, **extra})
    return env


def test_the_enumeration_finds_the_broker_commands() -> None:
    """The analysis sees the commands known to need the broker (it would otherwise pass on nothing)."""
    found = set(_broker_commands())
    assert {("publish",), ("tail",), ("consume",), ("replay",), ("topics", "create"), ("topics", "describe"),
            ("alerts", "tail"), ("alerts", "ack"), ("serve", "ingest"), ("run",)} <= found
    assert not found & {("topics", "schemas"), ("eval",), ("bench", "model")}


def test_every_broker_command_without_bootstrap_servers_fails_clearly(tmp_path) -> None:
    refusing = sorted(path for path, reached in _broker_commands().items() if reached & REFUSES_WITHOUT_BROKER)
    env = _offline_env(tmp_path, COLUMNS="300")  # one line, unwrapped
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda path: (path, _run(_args(path), env, tmp_path)), refusing))
    failures = []
    for path, result in results:
        lines = result.stderr.decode().splitlines()
        ok = (result.returncode == 2 and len(lines) == 1 and "needs a running broker: set FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS" in lines[0])
        if not ok:
            failures.append(f"{' '.join(path)}: exit {result.returncode}, stderr {lines[-5:]}")
    assert failures == [], "\n".join(failures)


def test_every_broker_command_fails_fast_in_one_line_when_the_broker_is_unreachable(tmp_path) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = _offline_env(tmp_path, FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS=bootstrap, FEEDBACK_MINER_KAFKA__CONNECT_TIMEOUT_S="1",
                       COLUMNS="80")  # a narrow terminal must not wrap the line either
    commands = sorted(_broker_commands())
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda path: (path, _run(_args(path), env, tmp_path)), commands))
    failures = []
    for path, result in results:
        # One line and nothing else: no kafka-python log lines, no traceback, the class not named twice.
        lines = result.stderr.decode().splitlines()
        if result.returncode != 3 or lines != [f"error: Kafka unreachable at {bootstrap} (no answer within 1 s)"]:
            failures.append(f"{' '.join(path)}: exit {result.returncode}, stderr {lines[-5:]}")
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize("args", [["consume", "enricher"]])
def test_an_unreachable_broker_fails_before_the_model_loads(args, tmp_path) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    env = _offline_env(tmp_path, FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS=bootstrap, FEEDBACK_MINER_KAFKA__CONNECT_TIMEOUT_S="1")
    result = _run(args, env, tmp_path)
    assert result.returncode == 3
    assert result.stderr.decode().splitlines() == [f"error: Kafka unreachable at {bootstrap} (no answer within 1 s)"]
