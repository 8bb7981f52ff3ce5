"""Which failures are the message's fault and which are the world's.

A transient fault (the store or the broker unreachable, a timeout, a lock
held too long) says nothing about the message: the runtime keeps its batch,
pauses and retries. Everything else is the message's own problem and is
dead-lettered. Classification walks the exception chain, because SQLAlchemy
and kafka-python wrap the driver's error.
"""

from __future__ import annotations

import socket
import sqlite3

from kafka.errors import (
    BrokerNotAvailableError,
    InvalidProducerEpochError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)
from sqlalchemy import exc as sa_exc


class TransientError(Exception):
    """Raised by a collaborator that knows its failure is temporary."""


# A producer that the broker forgot (embedded broker restarted) never recovers: it must be recreated.
_FATAL_PRODUCER = (OutOfOrderSequenceNumberError, UnknownProducerIdError, InvalidProducerEpochError)


def _failed_producer_id(exc: BaseException) -> bool:
    """kafka-python reports an InitProducerId answer it does not expect (a broker just restarted:
    Tansu answers UnknownError), or that request cut off ("Could not execute transactional request
    … Cancelled"), as a bare KafkaError, and the producer is unusable from then on."""
    text = str(exc)
    return type(exc) is KafkaError and ("InitProducerId" in text or "Could not execute transactional request" in text)


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _transient_one(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | ConnectionError | TimeoutError | socket.timeout):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sqlite3.OperationalError):  # "database is locked", "unable to open database file"
        return True
    if isinstance(exc, (KafkaConnectionError, KafkaTimeoutError, BrokerNotAvailableError, *_FATAL_PRODUCER)):
        return True
    if _failed_producer_id(exc):
        return True
    if isinstance(exc, KafkaError) and getattr(exc, "retriable", False):
        return True
    try:  # psycopg is optional: only PostgreSQL stores need it
        import psycopg

        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return False


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) is an outage, not a property of the message."""
    return any(_transient_one(e) for e in _chain(exc))


def needs_new_producer(exc: BaseException) -> bool:
    """True when the producer's idempotence state is lost (the broker restarted without it)."""
    return any(isinstance(e, _FATAL_PRODUCER) or _failed_producer_id(e) for e in _chain(exc))


def describe(exc: BaseException) -> str:
    """One short line: the innermost cause's class and first line."""
    inner = list(_chain(exc))[-1]
    name = type(inner).__name__
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    # kafka-python's texts often name the class already ("[Error 45] OutOfOrderSequenceNumberError: None").
    return (text if name in text else f"{name}: {text}")[:300] if text else name
