# -*- test-case-name: txmsg.test.test_worker_headers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The message headers the worker reads, validated: headers come from the wire
and are untrusted input.

L{read_headers} turns a delivery's headers into a L{DeliveryHeaders} value or
raises L{BadHeaders} with the reason; nothing else.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from txmsg.worker.retry import ATTEMPT_HEADER

if TYPE_CHECKING:  # a type only
    from txmsg.worker.decisions import DeadLetter

__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_COUNT_HEADER",
    "ERROR_MESSAGE_HEADER",
    "ERROR_TYPE_HEADER",
    "FAILED_AT_HEADER",
    "MAX_COUNT",
    "ONCE_HEADER",
    "QUEUE_HEADER",
    "REASON_HEADER",
    "REDELIVERED_HEADER",
    "TRACEBACK_HEADER",
    "WORKER_HEADER",
    "BadHeaders",
    "DeliveryHeaders",
    "dead_letter_headers",
    "uncounted_headers",
    "read_headers",
]

#: Set by RabbitMQ on quorum queues: how often the message was delivered
#: before (and returned).
DELIVERY_COUNT_HEADER = "x-delivery-count"
#: Set by the worker when it republishes a redelivered message to count it:
#: the task still sees C{redelivered}.
REDELIVERED_HEADER = "x-txmsg-redelivered"

#: Set by the scheduler: run this task id at most once (the worker claims
#: the id in Redis, as for tasks declared idempotent).
ONCE_HEADER = "x-txmsg-once"

#: Headers set on dead letters.
REASON_HEADER = "x-txmsg-reason"
ERROR_TYPE_HEADER = "x-txmsg-error-type"
ERROR_MESSAGE_HEADER = "x-txmsg-error-message"
TRACEBACK_HEADER = "x-txmsg-traceback"
QUEUE_HEADER = "x-txmsg-queue"
WORKER_HEADER = "x-txmsg-worker"
FAILED_AT_HEADER = "x-txmsg-failed-at"

#: The largest count a header may carry; anything above is not a count a
#: worker wrote.
MAX_COUNT = 1_000_000


class BadHeaders(ValueError):
    """
    A delivery's headers are not what a txmsg worker or client writes; the
    message says which and why.
    """


@dataclass(frozen=True)
class DeliveryHeaders:
    """
    What the worker reads from a delivery's headers.

    @ivar attempts: runs of the task before this delivery (the
        C{x-txmsg-attempts} header; 0 when absent).
    @ivar delivery_count: earlier deliveries of this very message, as the
        broker counted them (C{x-delivery-count}), or L{None} when the
        broker does not count.
    @ivar redelivered: whether the worker marked the message as redelivered
        when it republished it.
    @ivar once: the sender asks that this task id run at most once.
    """

    attempts: int = 0
    delivery_count: int | None = None
    redelivered: bool = False
    once: bool = False


#: The headers of a delivery that has none.
_NO_HEADERS = DeliveryHeaders()


def _count(headers: Mapping[object, object], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadHeaders("{} must be an integer, not {}".format(name, type(value).__name__))
    if not 0 <= value <= MAX_COUNT:
        raise BadHeaders("{} must be between 0 and {}, not {}".format(name, MAX_COUNT, value))
    return value


def read_headers(headers: object) -> DeliveryHeaders:
    """
    Validate the worker's headers of one delivery.

    @param headers: the message headers (L{None} for none).
    @raise BadHeaders: with the reason, when a header the worker reads has a
        value no txmsg component writes.
    """
    if headers is None or headers == {}:  # most deliveries
        return _NO_HEADERS
    if not isinstance(headers, Mapping):
        raise BadHeaders("headers must be a table, not {}".format(type(headers).__name__))
    attempts = _count(headers, ATTEMPT_HEADER)
    delivery_count = _count(headers, DELIVERY_COUNT_HEADER)
    return DeliveryHeaders(
        attempts or 0,
        delivery_count,
        _flag(headers, REDELIVERED_HEADER),
        _flag(headers, ONCE_HEADER),
    )


def _flag(headers: Mapping[object, object], name: str) -> bool:
    mark = headers.get(name)
    if mark is not None and mark not in (0, 1):  # True == 1, False == 0
        raise BadHeaders("{} must be 0 or 1, not {!r}".format(name, mark)[:200])
    return bool(mark)


def dead_letter_headers(
    dead: DeadLetter, queue: str, worker: str, failed_at: int
) -> dict[str, Any]:
    """
    The headers a dead letter carries (on every broker): the reason, the
    error, the queue, the worker, when, and the attempts when known.
    """
    headers: dict[str, Any] = {
        REASON_HEADER: dead.reason,
        ERROR_TYPE_HEADER: dead.error_type,
        ERROR_MESSAGE_HEADER: dead.error_message[:1000],
        TRACEBACK_HEADER: dead.traceback,
        QUEUE_HEADER: queue,
        WORKER_HEADER: worker,
        FAILED_AT_HEADER: failed_at,
    }
    if dead.attempts is not None:
        headers[ATTEMPT_HEADER] = dead.attempts
    return headers


def uncounted_headers(attempts: int, redelivered: bool) -> dict[str, Any]:
    """
    The headers of a copy republished without counting a run (a hand-back,
    a C{Delay}): the attempts so far and the redelivered mark, when set.
    """
    headers: dict[str, Any] = {}
    if attempts:
        headers[ATTEMPT_HEADER] = attempts
    if redelivered:
        headers[REDELIVERED_HEADER] = 1
    return headers
