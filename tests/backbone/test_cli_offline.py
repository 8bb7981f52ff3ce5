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
