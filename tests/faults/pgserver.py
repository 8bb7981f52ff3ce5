"""A private, throw-away PostgreSQL server for outage tests.

The tests stop and kill this server on purpose, so it must never be the
machine's shared server (127.0.0.1:5432): it gets its own data directory, its
own free port and its own unix-socket directory.

initdb and postgres refuse to run as root; as root (CI) they run as the
``postgres`` system user, which then owns the directory. That directory is then
a fresh one in the system temp dir (linked from the test's tmp_path as ``pg``),
not under tmp_path itself: every pytest session that starts on the machine
resets ``/tmp/pytest-of-root`` to mode 0700, which would lock the postgres user
out of its own data directory in the middle of a test (pg_ctl stop: Permission denied).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, pg_ctl and postgres; the test fails without one."""
    candidates = [
        p for p in Path("/usr/lib/postgresql").glob("*/bin")
        if all((p / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))
    ]
    if not candidates:
        on_path = shutil.which("pg_ctl")
        if on_path and (Path(on_path).parent / "initdb").is_file():
            return Path(on_path).parent
        pytest.fail(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/<version>/bin/{initdb,pg_ctl,postgres}, "
            "no pg_ctl on PATH): the outage tests need them to run a private server (apt-get install postgresql)",
            pytrace=False,
        )
    return max(candidates, key=_version_key)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """``start()``, ``stop()`` (fast shutdown), ``kill()`` (SIGKILL: a crash), ``url``."""

    def __init__(self, base: Path):
        self.bindir = find_bindir()
        self.base = base
        self._as_root = os.geteuid() == 0
        if self._as_root:
            self.root = Path(tempfile.mkdtemp(prefix="feedback-miner-test-pg-"))
            (base / "pg").symlink_to(self.root, target_is_directory=True)
        else:
            self.root = base / "pg"
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    # --- process control ------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self.log_tail()}")
        return done

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if not self._as_root:
            return
        owner = pwd.getpwnam("postgres")
        for path in (self.root, self.sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        # The postgres user must be able to reach the directory (the temp dir is world-searchable).
        for parent in self.root.parents:
            assert parent.stat().st_mode & 0o001, f"{parent} is not searchable by the postgres user"

    def init(self) -> None:
        self._prepare_dirs()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# private test server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.sockets}'\n"
                "fsync = off\nfull_page_writes = off\n"
                "max_connections = 40\nshared_buffers = 32MB\n"
            )
        self._initialised = True

    def start(self) -> PrivatePostgres:
        if not self._initialised:
            self.init()
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut, as when a database server goes down."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def kill(self) -> None:
        """A crash: SIGKILL the postmaster and every backend; the next start recovers from the WAL."""
        pid_file = self.data / "postmaster.pid"
        try:
            postmaster = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        victims = [postmaster, *self._children(postmaster)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and not self._zombie(pid) for pid in victims):
            time.sleep(0.05)
        # A killed postmaster may stay a zombie (its parent is whatever reaps orphans here), and
        # postgres takes a zombie's pid in its lock files for a live server: remove the stale ones.
        pid_file.unlink(missing_ok=True)
        for stale in self.sockets.glob(f".s.PGSQL.{self.port}*"):
            stale.unlink(missing_ok=True)

    @staticmethod
    def _zombie(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return True

    @staticmethod
    def _children(parent: int) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == parent:
                    found.append(int(entry.name))
        return found

    def close(self) -> None:
        """Teardown: stop whatever is still running (immediate mode), keep the server log in the
        test's tmp_path, remove the directory made outside it. Never fails the test."""
        if self._initialised:
            if self.is_running():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", check=False)
            if (self.data / "postmaster.pid").exists():  # still up (or pg_ctl could not tell): kill it
                self.kill()
        if self._as_root and self.root.exists():
            if self.log.exists():
                shutil.copyfile(self.log, self.base / "postgres.log")
            shutil.rmtree(self.root, ignore_errors=True)
