"""Every deployment in deploy/prefect.yaml points at a flow that imports, takes the parameters the
file gives it and names in its description, and can run on its schedule without a missing parameter."""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect import Flow
from pydantic import TypeAdapter

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text(encoding="utf-8"))
DEPLOYMENTS = SPEC["deployments"]


def _flow(entrypoint: str) -> Flow:
    path, name = entrypoint.split(":")
    assert (ROOT / path).is_file(), f"{path} does not exist"
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name, None)
    assert isinstance(flow, Flow), f"{entrypoint} is not a Prefect flow"
    return flow


def _documented(description: str) -> list[str]:
    """Parameters a description names as '(parameters a, b, c)'."""
    found = re.search(r"\(parameters? ([^)]*)\)", description or "")
    return [p.strip() for p in found.group(1).split(",")] if found else []


def test_the_file_is_a_prefect_3_project():
    assert SPEC["prefect-version"].startswith("3.")
    assert len({d["name"] for d in DEPLOYMENTS}) == len(DEPLOYMENTS), "deployment names must be unique"
    # The worker runs flows from the image's code folder (deploy/Dockerfile's WORKDIR).
    directory = SPEC["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"]
    assert f"WORKDIR {directory}" in (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_deployment_points_at_a_flow_with_its_parameters(deployment):
    flow = _flow(deployment["entrypoint"])
    signature = inspect.signature(flow.fn)
    given = deployment.get("parameters") or {}
    unknown = set(given) - set(signature.parameters)
    assert not unknown, f"{deployment['name']}: the flow takes no parameter {sorted(unknown)}"
    hints = typing.get_type_hints(flow.fn)
    for name, value in given.items():  # each value has the type the flow declares
        TypeAdapter(hints.get(name, typing.Any)).validate_python(value)
    named = _documented(deployment.get("description", ""))
    assert set(named) <= set(signature.parameters), f"{deployment['name']}: description names {named}"
    assert deployment["work_pool"]["name"] == "feedback-miner"
    assert flow.fn.__doc__, f"{deployment['entrypoint']}: the flow says what it does"


@pytest.mark.parametrize("deployment", [d for d in DEPLOYMENTS if d.get("schedules")],
                         ids=[d["name"] for d in DEPLOYMENTS if d.get("schedules")])
def test_scheduled_deployments_need_no_parameter_at_run_time(deployment):
    from prefect.client.schemas.schedules import CronSchedule

    flow = _flow(deployment["entrypoint"])
    required = {name for name, p in inspect.signature(flow.fn).parameters.items() if p.default is inspect.Parameter.empty}
    assert required <= set(deployment.get("parameters") or {}), f"{deployment['name']} would run without {required}"
    for schedule in deployment["schedules"]:
        CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # raises on a bad cron or zone
        ZoneInfo(schedule["timezone"])


def test_the_training_deployment_runs_the_promotion_loop():
    """The training deployment writes no `out` (a candidate under the registry, never the shipped
    artifacts) and so evaluates against the current model and promotes only if not worse."""
    training = next(d for d in DEPLOYMENTS if d["entrypoint"].endswith("training.py:training_flow"))
    flow = _flow(training["entrypoint"])
    params = inspect.signature(flow.fn).parameters
    assert {"corrections", "promote", "force_promote", "candidate", "skip_finetune"} <= set(params)
    assert "out" not in (training.get("parameters") or {})
    assert params["promote"].default is None and params["corrections"].default is True
