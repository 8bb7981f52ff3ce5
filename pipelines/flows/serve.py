"""Serve the scheduled flows with Prefect: the weekly digest and the pipeline health check.

Run by ``feedback-miner up`` as a supervised child (``python -m pipelines.flows.serve``)
against the Prefect server named by ``PREFECT_API_URL`` (schedules need a server's
scheduler; an ephemeral one has none). Schedules come from the ``up`` settings.
"""

from __future__ import annotations

import logging
import os
import time

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


def main() -> None:
    from prefect import serve

    api = os.environ.get("PREFECT_API_URL")
    if not api:
        raise SystemExit("PREFECT_API_URL is not set: scheduled flows need a Prefect server (feedback-miner up starts one)")
    wait_for_api(api, timeout_s=120.0)
    # The runner handles SIGTERM (from up) itself: it stops, and pauses the schedules on the way out.
    serve(*scheduled_deployments(Settings()), print_starting_message=False)


if __name__ == "__main__":
    main()
