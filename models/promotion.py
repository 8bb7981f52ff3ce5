"""Promoted models: a registry folder of versioned artifacts, a ``current`` pointer, and the log.

Layout of the registry (the setting ``promotion.registry_dir``)::

    versions/<version>/   artifact folders as ``FeedbackModel.load`` reads them (never changed once written)
    current               the version served (one line); absent: the shipped models/artifacts serve
    promotions.json       every decision: promoted, rejected (with both models' figures), rolled back

The shipped artifacts in git are never written to. The pointer is replaced atomically
(``os.replace``), so a stage that starts while a promotion runs reads the old or the new
version, never half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from models.feedback_model import ARTIFACTS_DIR, CONFIG_FILE, HEADS_FILE, artifacts_digest

VERSIONS = "versions"
POINTER = "current"
LOG = "promotions.json"
SHIPPED = "shipped"  # how the log names the artifacts in git
CARD = "MODEL_CARD.md"


class RegistryError(ValueError):
    """The registry is inconsistent (a pointer to a missing version) or a request cannot be met."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def current_version(registry_dir: Path | None) -> str | None:
    """The promoted version served now, or None (the shipped artifacts)."""
    if registry_dir is None:
        return None
    pointer = Path(registry_dir) / POINTER
    if not pointer.is_file():
        return None
    return pointer.read_text(encoding="utf-8").strip() or None


def version_dir(registry_dir: Path, version: str | None) -> Path:
    if version is None or version == SHIPPED:
        return ARTIFACTS_DIR
    return Path(registry_dir) / VERSIONS / version


def current_artifacts(registry_dir: Path | None) -> Path:
    """The artifacts folder to serve: the pointer's version, else the shipped one."""
    version = current_version(registry_dir)
    if version is None:
        return ARTIFACTS_DIR
    folder = version_dir(registry_dir, version)
    if not (folder / CONFIG_FILE).is_file() or not (folder / HEADS_FILE).is_file():
        raise RegistryError(f"{Path(registry_dir) / POINTER} names version {version!r}, but {folder} holds no "
                            f"artifacts (run 'feedback-miner model rollback' or fix the pointer)")
    return folder


def read_log(registry_dir: Path) -> list[dict]:
    path = Path(registry_dir) / LOG
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def _append_log(registry_dir: Path, record: dict) -> None:
    entries = read_log(registry_dir) + [record]
    _write_atomic(Path(registry_dir) / LOG, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def _locked(registry_dir: Path) -> Iterator[None]:
    """One promotion or rollback at a time per registry (the log and the pointer change together)."""
    Path(registry_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(registry_dir) / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _set_pointer(registry_dir: Path, version: str | None) -> None:
    pointer = Path(registry_dir) / POINTER
    if version is None or version == SHIPPED:
        pointer.unlink(missing_ok=True)
    else:
        _write_atomic(pointer, version + "\n")


# --- loading versions ----------------------------------------------------------------------

_encoders: dict[tuple, object] = {}


def load_model(model_dir: Path | None, artifacts_dir: Path | None = None, registry_dir: Path | None = None,
               quantize: bool | str = False, max_length: int = 256):
    """``FeedbackModel.load`` that reuses the encoder of the previous call when the tuned layers,
    prefix and settings are the same: versions refitted on the same encoder differ only in their
    heads, and comparing two of them then builds the encoder once."""
    import hashlib

    from models.encoder import quantize_path
    from models.feedback_model import ENCODER_FILE, FeedbackModel, artifact_prefix

    art = Path(artifacts_dir) if artifacts_dir else current_artifacts(registry_dir)
    config = json.loads((art / CONFIG_FILE).read_text())
    top = art / ENCODER_FILE
    key = (str(model_dir), quantize_path(quantize), max_length, artifact_prefix(config), config.get("split_layer"),
           config.get("num_layers"), hashlib.sha256(top.read_bytes()).hexdigest() if top.is_file() else None)
    model = FeedbackModel.load(model_dir, artifacts_dir, quantize=quantize, max_length=max_length,
                               registry_dir=registry_dir, encoder=_encoders.get(key))
    _encoders.clear()  # one encoder kept: they are large
    _encoders[key] = model.encoder
    return model


# --- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Candidate against current on the same held-out data; each figure: higher is better."""

    promoted: bool
    reason: str
    max_regression: float
    candidate: dict[str, float]
    current: dict[str, float]
    forced: bool = False
    worse: list[str] = field(default_factory=list)  # figures below current − max_regression

    def rows(self) -> list[tuple[str, float | None, float | None, float | None]]:
        """(figure, candidate, current, candidate − current) for each figure."""
        out = []
        for name in sorted(set(self.candidate) | set(self.current)):
            c, b = self.candidate.get(name), self.current.get(name)
            out.append((name, c, b, None if c is None or b is None else round(c - b, 4)))
        return out


def decide(candidate: dict[str, float], current: dict[str, float], max_regression: float,
           force: bool = False) -> Decision:
    """Promote unless some figure both models have is lower for the candidate by more than ``max_regression``."""
    worse = sorted(name for name in candidate.keys() & current.keys()
                   if candidate[name] < current[name] - max_regression - 1e-12)
    if force:
        return Decision(True, "forced (no comparison)", max_regression, candidate, current, True, worse)
    if not candidate.keys() & current.keys():
        return Decision(False, "no figure to compare", max_regression, candidate, current, False, worse)
    if worse:
        drops = ", ".join(f"{n} {candidate[n]:.4f} < {current[n]:.4f}" for n in worse)
        return Decision(False, f"worse by more than {max_regression}: {drops}", max_regression, candidate, current,
                        False, worse)
    return Decision(True, f"not worse by more than {max_regression} on any figure", max_regression, candidate,
                    current, False, worse)


def markdown(decision: Decision, candidate_label: str, current_label: str) -> str:
    """The decision as Markdown (model card section, Prefect artifact)."""
    verdict = "**promoted**" if decision.promoted else "**not promoted**"
    lines = [f"{verdict}: {decision.reason}", "",
             f"| figure | candidate ({candidate_label}) | current ({current_label}) | difference |", "|---|---|---|---|"]
    for name, c, b, d in decision.rows():
        fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"| {name} | {fmt(c)} | {fmt(b)} | {'—' if d is None else f'{d:+.4f}'} |")
    return "\n".join(lines) + "\n"


def _card_line(folder: Path, text: str) -> None:
    card = Path(folder) / CARD
    if Path(folder).resolve() == ARTIFACTS_DIR.resolve():
        return  # the shipped card in git is never rewritten
    head = card.read_text(encoding="utf-8") if card.is_file() else "# Model card\n"
    if "\n## Promotion\n" not in head:
        head = head.rstrip("\n") + "\n\n## Promotion\n\n"
    card.write_text(head.rstrip("\n") + "\n" + text.rstrip("\n") + "\n", encoding="utf-8")


# --- registry operations ---------------------------------------------------------------------


def promote(registry_dir: Path, candidate_dir: Path, decision: Decision, by: str, data: dict | None = None) -> dict:
    """Record the decision; when promoted, copy the candidate into ``versions/`` and point ``current`` at it.

    Returns the log record. ``data`` says what the figures were computed on (files, row counts).
    """
    registry_dir = Path(registry_dir)
    with _locked(registry_dir):
        return _promote(registry_dir, Path(candidate_dir), decision, by, data)


def _promote(registry_dir: Path, candidate_dir: Path, decision: Decision, by: str, data: dict | None) -> dict:
    previous = current_version(registry_dir)
    digest = artifacts_digest(Path(candidate_dir))
    record = {"at": _now(), "action": "promote" if decision.promoted else "reject", "by": by,
              "candidate": str(candidate_dir), "digest": digest[:16], "previous": previous or SHIPPED,
              "decision": asdict(decision), "data": data or {}}
    version = None
    if decision.promoted:
        version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + digest[:8]
        target = registry_dir / VERSIONS / version
        if not target.is_dir():  # the same artifacts promoted twice within a second are one version
            tmp = registry_dir / VERSIONS / f".{version}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(candidate_dir, tmp)
            os.replace(tmp, target)
        record["version"] = version
    verb = "promoted" if decision.promoted else "rejected"
    summary = (f"- {record['at']}: {verb} over {previous or SHIPPED} by {by} — {decision.reason}; "
               + "; ".join(f"{n} {c if c is not None else '—'} vs {b if b is not None else '—'}"
                           for n, c, b, _ in decision.rows()))
    _card_line(candidate_dir, summary)
    if version:
        _card_line(registry_dir / VERSIONS / version, summary)
    _append_log(registry_dir, record)
    if version:
        _set_pointer(registry_dir, version)
    return record


def rollback(registry_dir: Path, by: str) -> dict:
    """Point ``current`` back at the version served before the current one was promoted.

    Walks back the chain of promotions: rolling back twice goes two promotions back, down to the
    shipped artifacts. Returns the log record.
    """
    registry_dir = Path(registry_dir)
    with _locked(registry_dir):
        return _rollback(registry_dir, by)


def _rollback(registry_dir: Path, by: str) -> dict:
    current = current_version(registry_dir)
    if current is None:
        raise RegistryError("nothing to roll back: the shipped artifacts are served (no promoted version)")
    made_current = next((r for r in reversed(read_log(registry_dir))
                         if r.get("action") == "promote" and r.get("version") == current), None)
    if made_current is None:
        raise RegistryError(f"the log {registry_dir / LOG} does not say how {current} became current")
    previous = made_current.get("previous") or SHIPPED
    if previous != SHIPPED and not (version_dir(registry_dir, previous) / CONFIG_FILE).is_file():
        raise RegistryError(f"cannot roll back to {previous}: {version_dir(registry_dir, previous)} is missing")
    record = {"at": _now(), "action": "rollback", "by": by, "from": current, "to": previous}
    _append_log(registry_dir, record)
    _set_pointer(registry_dir, previous)
    return record
