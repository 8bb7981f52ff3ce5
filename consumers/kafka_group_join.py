"""Collect a consumer-group join that finished between two polls (a kafka-python 3.0 bug).

kafka-python runs the JoinGroup/SyncGroup round as a task beside ``poll``. When the round
finishes while the caller is outside ``poll`` (processing a batch, or waiting for the metadata
answer that a pattern subscription asks for first), the next ``poll`` sees a finished task,
drops its assignment and sends a new JoinGroup. For the group leader a new JoinGroup starts
another rebalance: on a busy broker the leader's rounds kept finishing between polls and the
stage never got its partitions back (seen on Tansu in CI). Here a finished, successful round is
completed as kafka-python would have done inside ``poll``; failed rounds keep its handling.
"""

from __future__ import annotations

import logging

from kafka.coordinator.base import BaseCoordinator, MemberState

log = logging.getLogger(__name__)

_join_group_async = BaseCoordinator.join_group_async


async def _join_group_collecting_finished_round(self: BaseCoordinator, timeout_ms=None):
    finished = self._join_task
    if finished is None or not finished.is_done or not finished.succeeded() or not self.need_rejoin():
        return await _join_group_async(self, timeout_ms)
    log.debug("group %s: collecting a join round that finished between polls", self.group_id)
    # The tail of kafka-python's join_group_async for a successful round.
    self._join_task = None
    with self._lock:
        self.rejoining = False
        self.rejoin_needed = False
        self.state = MemberState.STABLE
        self._enable_heartbeat()
    await self._on_join_complete_async(
        self._generation.generation_id, self._generation.member_id, self._generation.protocol, finished.value
    )
    return True


def install() -> None:
    """Patch the coordinator once (idempotent)."""
    BaseCoordinator.join_group_async = _join_group_collecting_finished_round
