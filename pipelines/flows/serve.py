"""Serve the scheduled flows with Prefect: the weekly digest and the pipeline health check.

Run by ``feedback-miner up`` as a supervised child (``python -m pipelines.flows.serve``)
against the Prefect server named by ``PREFECT_API_URL`` (an ephemeral server has no
scheduler). Schedules come from the ``up`` settings.

``--schedule-runs``: Prefect 3.8.8's server scheduler fails on SQLAlchemy 2.1 (its
bulk insert of scheduled runs raises "Can't evaluate bulk DML statement"), so the
local server ``up`` starts runs without its scheduler and this process creates
the next few minutes' runs of its own deployments through the API instead, with
the idempotency keys the server's scheduler uses (so the two never duplicate a run).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from topics.settings import Settings

log = logging.getLogger(__name__)


def scheduled_deployments(settings: Settings) -> list:
    from prefect.schedules import Cron

    from pipelines.flows.digest import weekly_digest_flow
    from pipelines.flows.health import pipeline_health_flow

    up = settings.up
    return [
        weekly_digest_flow.to_deployment(
            name="weekly-theme-digest", schedules=[Cron(up.digest_cron, timezone=up.timezone)],
            description="Cluster last week's feedback into themes, write the digest, announce it."),
        # One health run at a time: a slow run (a model check) must not overlap the next minute's.
        pipeline_health_flow.to_deployment(
            name="pipeline-health", schedules=[Cron(up.health_cron, timezone=up.timezone)], concurrency_limit=1,
            description="Consumer lag, dead-letter growth, stalled stages, store and model errors → health alerts."),
    ]


def wait_for_api(url: str, timeout_s: float) -> None:
    """Block until the Prefect server answers its health endpoint (it starts in the same moment as we do)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url.rstrip('/')}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Prefect API at {url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


def schedule_runs_ahead(client, deployment_names: list[str], horizon: timedelta, now: datetime | None = None) -> int:
    """Create the scheduled runs due within ``horizon`` for these deployments (``flow/deployment``); returns how many
    were asked for (existing ones are found by their idempotency key, not created twice)."""
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule
    from prefect.states import Scheduled

    now = now or datetime.now(timezone.utc)
    asked = 0
    for name in deployment_names:
        deployment = client.read_deployment_by_name(name)
        if deployment.paused:
            continue
        for entry in deployment.schedules:
            cron = getattr(entry.schedule, "cron", None)
            if not entry.active or cron is None:
                continue
            # The server's own schedule type: the same dates, so the same idempotency keys as its scheduler.
            schedule = CronSchedule(cron=cron, timezone=entry.schedule.timezone, day_or=entry.schedule.day_or)
            for date in asyncio.run(schedule.get_dates(n=100, start=now, end=now + horizon)):
                client.create_flow_run_from_deployment(
                    deployment.id, state=Scheduled(scheduled_time=date),
                    idempotency_key=f"scheduled {deployment.id} {entry.id} {date}")
                asked += 1
    return asked


def _scheduling_loop(deployment_names: list[str], every_s: float, horizon: timedelta) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while True:
            try:
                schedule_runs_ahead(client, deployment_names, horizon)
            except Exception as exc:  # noqa: BLE001 - the deployments may not be registered yet; next round
                log.info("scheduling runs ahead failed (%s: %s); retrying", type(exc).__name__, exc)
            time.sleep(every_s)


def main(argv: list[str] | None = None) -> None:
    from prefect import serve

    argv = sys.argv[1:] if argv is None else argv
    api = os.environ.get("PREFECT_API_URL")
    if not api:
        raise SystemExit("PREFECT_API_URL is not set: scheduled flows need a Prefect server (feedback-miner up starts one)")
    wait_for_api(api, timeout_s=120.0)
    deployments = scheduled_deployments(Settings())
    if "--schedule-runs" in argv:
        names = [f"{d.flow_name}/{d.name}" for d in deployments]
        # Short horizon: runs created ahead outlive a stop of up and would run late at the next start.
        threading.Thread(target=_scheduling_loop, args=(names, 20.0, timedelta(minutes=2)), daemon=True,
                         name="schedule-runs").start()
    # The runner handles SIGTERM (from up) itself: it stops, and pauses the schedules on the way out.
    serve(*deployments, print_starting_message=False)


if __name__ == "__main__":
    main()
