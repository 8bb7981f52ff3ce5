"""Duplicate detection: fingerprints (pure) and the index protocol that remembers them.

Exact: SHA-256 of customer id + normalised text, within a time window.
Near: MinHash over character shingles, found through LSH bands and confirmed
by the estimated Jaccard similarity. A duplicate links to the first event of
its group (``duplicate_of`` never points at another duplicate).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

import numpy as np
from datasketch import MinHash, MinHashLSH

from consumers.normalizer.pii import PLACEHOLDER
from topics.settings import DedupSettings

# Punctuation, spaces and placeholders do not make two messages different.
_NOISE = re.compile(r"[\s\W_]+")
_SEED = 1


@dataclass(frozen=True)
class Fingerprint:
    event_id: str
    customer_id: str
    received_at: datetime
    exact_key: str
    # MinHash signature (uint64 per permutation) and its LSH band keys; None for texts too short to compare.
    signature: bytes | None
    band_keys: tuple[int, ...]


class DedupUnavailable(RuntimeError):
    """The index cannot be reached (e.g. the database is down); the stage forwards events unlinked."""


class DedupIndex(Protocol):
    """Remembers fingerprints; implementations must survive restarts to be used in production.

    ``resolve`` raises ``DedupUnavailable`` when its backing store cannot be used.
    """

    def resolve(self, fingerprints: Sequence[Fingerprint]) -> list[str | None]:
        """For each fingerprint in order: the event id it duplicates (or None), then remember it.

        A fingerprint whose event id is already known returns the answer given the first
        time (redelivered events are not duplicates of themselves).
        """


def dedup_key_text(text: str) -> str:
    return _NOISE.sub("", PLACEHOLDER.sub("", text)).lower()


def shingles(text: str, size: int) -> set[str]:
    text = dedup_key_text(text)
    if len(text) <= size:
        return {text} if text else set()
    return {text[i : i + size] for i in range(len(text) - size + 1)}


# Band layout weighted towards recall: every candidate is verified against its signature,
# so a false candidate costs one comparison while a missed one is a missed duplicate.
_LSH_WEIGHTS = (0.1, 0.9)


@lru_cache(maxsize=8)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for ``threshold`` as datasketch chooses them (64 permutations at 0.7: 12 × 5).

    Changing threshold or num_perm changes the band keys: near-duplicate memory starts afresh
    (exact keys are unaffected).
    """
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=_LSH_WEIGHTS)
    return lsh.b, lsh.r


def minhash(text: str, settings: DedupSettings) -> MinHash | None:
    grams = shingles(text, settings.shingle_size)
    if len(dedup_key_text(text)) < settings.near_min_chars or not grams:
        return None
    mh = MinHash(num_perm=settings.num_perm, seed=_SEED)
    mh.update_batch([g.encode("utf-8") for g in sorted(grams)])
    return mh


def band_keys(hashvalues: np.ndarray, settings: DedupSettings, scope: str) -> tuple[int, ...]:
    """One signed 63-bit key per LSH band (band number and scope mixed in, so one index column suffices)."""
    bands, rows = lsh_bands(settings.near_threshold, settings.num_perm)
    keys = []
    for band in range(bands):
        chunk = hashvalues[band * rows : (band + 1) * rows].astype("<u8").tobytes()
        digest = hashlib.blake2b(chunk, digest_size=8, person=f"{scope[:8]}|{band}".encode()[:16]).digest()
        keys.append(int.from_bytes(digest, "big", signed=True))
    return tuple(keys)


def fingerprint(event_id: str, customer_id: str, received_at: datetime, text: str, settings: DedupSettings) -> Fingerprint:
    exact = hashlib.sha256(f"{customer_id}\x00{dedup_key_text(text)}".encode("utf-8")).hexdigest()
    mh = minhash(text, settings)
    if mh is None:
        return Fingerprint(event_id, customer_id, received_at, exact, None, ())
    scope = "" if settings.near_scope == "global" else customer_id
    # Per-customer scope needs the customer in the band key; hashed so the key stays short.
    scope_tag = hashlib.blake2b(scope.encode(), digest_size=4).hexdigest() if scope else "global"
    return Fingerprint(event_id, customer_id, received_at, exact, mh.hashvalues.astype("<u8").tobytes(), band_keys(mh.hashvalues, settings, scope_tag))


def similarity(signature_a: bytes, signature_b: bytes) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    a = np.frombuffer(signature_a, dtype="<u8")
    b = np.frombuffer(signature_b, dtype="<u8")
    if a.shape != b.shape:
        return 0.0
    return float(np.count_nonzero(a == b)) / len(a)


def window_of(settings: DedupSettings) -> timedelta:
    return timedelta(hours=settings.window_hours)


@dataclass
class _Entry:
    fingerprint: Fingerprint
    duplicate_of: str | None


class MemoryDedupIndex:
    """An in-process index (one run, no persistence): for tools and tests of stage logic."""

    def __init__(self, settings: DedupSettings):
        self.settings = settings
        self._entries: dict[str, _Entry] = {}

    def resolve(self, fingerprints: Sequence[Fingerprint]) -> list[str | None]:
        return [self._resolve_one(fp) for fp in fingerprints]

    def _resolve_one(self, fp: Fingerprint) -> str | None:
        known = self._entries.get(fp.event_id)
        if known is not None:
            return known.duplicate_of
        window = window_of(self.settings)
        candidates = [e for e in self._entries.values() if abs(e.fingerprint.received_at - fp.received_at) <= window]
        match = find_match(fp, [(e.fingerprint, e.duplicate_of) for e in candidates], self.settings.near_threshold)
        self._entries[fp.event_id] = _Entry(fp, match)
        return match


def find_match(fp: Fingerprint, candidates: Sequence[tuple[Fingerprint, str | None]], threshold: float) -> str | None:
    """The group root of the earliest exact match, else of the most similar near match at or above ``threshold``."""
    exact = [(c, dup) for c, dup in candidates if c.exact_key == fp.exact_key]
    if exact:
        first, dup = min(exact, key=lambda item: (item[0].received_at, item[0].event_id))
        return dup or first.event_id
    if fp.signature is None:
        return None
    bands = set(fp.band_keys)
    best: tuple[float, str] | None = None
    for candidate, dup in candidates:
        if candidate.signature is None or not bands.intersection(candidate.band_keys):
            continue
        score = similarity(fp.signature, candidate.signature)
        if score >= threshold and (best is None or score > best[0]):
            best = (score, dup or candidate.event_id)
    return best[1] if best else None
