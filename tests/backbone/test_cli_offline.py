"""Commands that need a broker say so in one line when none is configured."""

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("args", [["topics", "create"], ["topics", "describe"], ["publish", "-"], ["tail", "feedback.raw"], ["consume", "normalizer"]])
def test_broker_commands_without_bootstrap_servers_fail_clearly(args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MINER_")}
    env["COLUMNS"] = "300"  # one line, unwrapped
    result = subprocess.run([sys.executable, "-m", "pipelines", *args], env=env, capture_output=True, timeout=60, input=b"")
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        f"error: '{' '.join(args[:2] if args[0] == 'topics' else args[:1])}' needs a running broker: "
        "set FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS (or start one with 'feedback-miner broker')"
    )


@pytest.mark.parametrize("args", [["consume", "enricher"], ["publish", "-"], ["replay", "--dry-run"]])
def test_an_unreachable_broker_fails_fast_in_one_line_before_the_model_loads(args):
    from topics.embedded import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_MINER_")}
    env.update({
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens there
        "FEEDBACK_MINER_KAFKA__CONNECT_TIMEOUT_S": "2",
        "COLUMNS": "80",  # a narrow terminal must not wrap the line either
    })
    result = subprocess.run([sys.executable, "-m", "pipelines", *args], env=env, capture_output=True, timeout=60, input=b"")
    assert result.returncode == 3
    port = env["FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS"]
    # One line and nothing else: no kafka-python log lines, no traceback, the class not named twice.
    assert result.stderr.decode().splitlines() == [f"error: Kafka unreachable at {port} (no answer within 2 s)"]
