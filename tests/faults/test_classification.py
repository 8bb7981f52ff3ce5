"""What the runtime takes for an outage (pause and retry) and what for the message's fault (dead letter).

The errors are the ones met in the outage tests of this package, as the clients raise them.
"""

from __future__ import annotations

import pytest
from kafka.errors import (
    CommitFailedError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)

from consumers.faults import is_transient, needs_new_producer


def _sqlalchemy_wrapped(driver_error: Exception) -> Exception:
    import sqlalchemy.exc as sa_exc

    return sa_exc.OperationalError("INSERT INTO enriched_feedback ...", {}, driver_error)


def _psycopg_refused() -> Exception:
    import psycopg

    return psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", port 5999 failed: Connection refused')


@pytest.mark.parametrize("make", [
    lambda: _sqlalchemy_wrapped(_psycopg_refused()),  # the store is down
    _psycopg_refused,
    lambda: KafkaTimeoutError("Failed to update metadata after 5.0 secs."),  # the broker is down
    lambda: OutOfOrderSequenceNumberError(),  # the broker restarted and forgot the producer
    lambda: UnknownProducerIdError(),
    # A restarted Tansu answers the new producer's InitProducerId with UnknownError; kafka-python
    # raises a bare KafkaError and the producer is dead (the runtime used to die of it).
    lambda: KafkaError("Unexpected error in InitProducerIdResponse: [Error -1] UnknownError"),
    lambda: KafkaError("Could not execute transactional request for unknown reasons: Cancelled"),
], ids=["sqlalchemy-over-psycopg", "psycopg", "kafka-timeout", "out-of-order", "unknown-producer", "init-producer-id",
        "producer-id-cut-off"])
def test_outages_are_transient(make) -> None:
    assert is_transient(make())


def test_a_producer_the_broker_forgot_is_replaced() -> None:
    for exc in (OutOfOrderSequenceNumberError(), UnknownProducerIdError(),
                KafkaError("Unexpected error in InitProducerIdResponse: [Error -1] UnknownError")):
        assert needs_new_producer(exc)
    assert not needs_new_producer(KafkaTimeoutError())


@pytest.mark.parametrize("exc", [
    ValueError("model returned an unusable embedding of shape (0,)"),
    KafkaError("something else"),
    MessageSizeTooLargeError(),
    CommitFailedError("rebalanced"),  # handled by the runtime itself, never retried as an outage
    RecursionError(),
], ids=["value-error", "bare-kafka-error", "too-large", "commit-failed", "recursion"])
def test_the_message_s_own_problems_are_not_transient(exc) -> None:
    assert not is_transient(exc)

