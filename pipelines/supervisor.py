"""Supervision decisions for ``feedback-miner up``: when a child starts, restarts, and how often it did.

Pure bookkeeping on a clock given by the caller (no processes, no signals): the
process layer (``pipelines/service.py``) reports starts and exits here and asks
which children are due. A child that exits on its own is a crash, whatever its
exit code (a stage never ends by itself); it restarts after an exponential
backoff that grows with the crashes in a row and starts over once the child has
run stably for a while.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from topics.settings import UpSettings


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    # A run at least this long before the exit resets the crashes in a row.
    stable_s: float = 60.0

    @classmethod
    def from_settings(cls, up: UpSettings) -> Backoff:
        return cls(up.restart_backoff_initial_s, up.restart_backoff_factor, up.restart_backoff_max_s, up.restart_stable_s)

    def delay(self, crashes_in_a_row: int) -> float:
        """Seconds to wait before the next start after this many crashes in a row (≥ 1)."""
        if crashes_in_a_row < 1:
            return 0.0
        # Capped before exponentiating so a long crash loop never overflows.
        exponent = min(crashes_in_a_row - 1, 64)
        return min(self.max_s, self.initial_s * self.factor ** exponent)


@dataclass
class ChildState:
    """What the supervisor knows about one child (times on the caller's monotonic clock)."""

    name: str
    pid: int | None = None
    started_at: float | None = None
    starts: int = 0
    crashes_in_a_row: int = 0
    last_exit_code: int | None = None
    # When the child should be (re)started; None while it runs or once stopping.
    start_at: float | None = 0.0

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)

    @property
    def running(self) -> bool:
        return self.pid is not None

    def uptime(self, now: float) -> float | None:
        return None if self.started_at is None or self.pid is None else max(0.0, now - self.started_at)


@dataclass(frozen=True)
class Exit:
    """What one exit meant: restart in ``delay_s`` seconds, or not at all (the supervisor is stopping)."""

    name: str
    code: int | None
    ran_s: float
    crashes_in_a_row: int
    delay_s: float | None


@dataclass
class Supervisor:
    names: list[str]
    backoff: Backoff = field(default_factory=Backoff)
    stopping: bool = False

    def __post_init__(self) -> None:
        self.children: dict[str, ChildState] = {name: ChildState(name) for name in self.names}

    def due(self, now: float) -> list[str]:
        """Children to start now, in the order they were named (the broker first, say)."""
        if self.stopping:
            return []
        return [c.name for c in self.children.values() if c.pid is None and c.start_at is not None and c.start_at <= now]

    def started(self, name: str, pid: int, now: float) -> ChildState:
        child = self.children[name]
        child.pid, child.started_at, child.start_at = pid, now, None
        child.starts += 1
        return child

    def start_failed(self, name: str, now: float) -> Exit:
        """The child could not even be started (e.g. the broker's port was busy): a crash of zero run time."""
        self.children[name].started_at = now
        return self.exited(name, None, now)

    def exited(self, name: str, code: int | None, now: float) -> Exit:
        child = self.children[name]
        ran = 0.0 if child.started_at is None else max(0.0, now - child.started_at)
        child.pid, child.last_exit_code = None, code
        if self.stopping:
            child.start_at = None
            return Exit(name, code, ran, child.crashes_in_a_row, None)
        child.crashes_in_a_row = 1 if ran >= self.backoff.stable_s else child.crashes_in_a_row + 1
        delay = self.backoff.delay(child.crashes_in_a_row)
        child.start_at = now + delay
        return Exit(name, code, ran, child.crashes_in_a_row, delay)

    def stop(self) -> None:
        """No more starts: children that exit from now on stay down."""
        self.stopping = True
        for child in self.children.values():
            child.start_at = None

    def running(self) -> list[ChildState]:
        return [c for c in self.children.values() if c.pid is not None]
