"""Migrations under a lock: stages started together on a fresh store all come up."""

from __future__ import annotations

import multiprocessing

from consumers.store import make_engine
from consumers.store.db import discover_migrations, schema_version


def _migrate_in_child(url: str, start, results) -> None:
    from consumers.store import make_engine, migrate

    start.wait()  # every child migrates at the same moment
    try:
        results.put(("ok", migrate(make_engine(url))))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_concurrent_first_start_migrates_once_and_every_process_comes_up(store_url):
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    children = [context.Process(target=_migrate_in_child, args=(store_url, start, results)) for _ in range(4)]
    for child in children:
        child.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert [status for status, _ in outcomes] == ["ok"] * 4, outcomes
    applied = sorted(v for _, versions in outcomes for v in versions)
    every = sorted(m.version for m in discover_migrations())
    assert applied == every  # each migration ran exactly once, in one of the processes
    assert schema_version(make_engine(store_url)) == every[-1]
