# -*- test-case-name: txmsg.test.test_amqp_queue_types -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Queue arguments for durable work queues of either type (pure: plain dicts).

A I{quorum} queue (RabbitMQ >= 3.8; what is below needs >= 3.10) is
replicated with Raft over an odd number of cluster nodes: a message is
confirmed to the publisher only once a majority stored it, so losing a
minority of nodes loses no confirmed message.  For the messages it
dead-letters itself (here: the broker-side delivery limit; the delay
levels of L{txmsg.amqp.delayed} do the same for expiring delays) it offers
C{x-dead-letter-strategy: at-least-once}: the
message stays in the source queue until the target queue confirmed it.
That strategy requires C{x-overflow: reject-publish} (a full queue refuses
publishes rather than dropping its head).  C{x-delivery-limit} makes the
broker dead-letter a message redelivered that many times: a poison cap that
holds even when no worker survives the message long enough to count it.

A I{classic} queue lives on one node; when that node is down the queue is
unavailable, and dead-lettering is at-most-once.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_DELIVERY_LIMIT",
    "QUEUE_TYPES",
    "dead_letter_arguments",
    "work_queue_arguments",
]

#: The queue types txmsg declares.
QUEUE_TYPES = ("classic", "quorum")

#: The broker-side delivery limit of quorum work queues.  A message is
#: redelivered (and counted) when a consumer's channel closes or it is
#: requeued; the worker's own cap (C{max_retries + 1} runs, dead-lettered
#: with a reason) normally acts first, so this is only a backstop, generous
#: because prefetched deliveries count too when a worker restarts.
DEFAULT_DELIVERY_LIMIT = 20


def _check(queue_type: str | None) -> str:
    kind = queue_type or "classic"
    if kind not in QUEUE_TYPES:
        raise ValueError(f"queue type must be classic or quorum, not {queue_type!r}")
    return kind


def _quorum(dead_letter_to: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if dead_letter_to is not None:
        args.update(
            {
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead_letter_to,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        )
    return args


def work_queue_arguments(
    queue_type: str | None,
    dead_letter_queue: str,
    delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT,
) -> dict[str, Any]:
    """
    The arguments of a work queue.

    @param queue_type: C{"classic"} (or L{None}: no arguments, as before) or
        C{"quorum"}.
    @param dead_letter_queue: where a quorum queue dead-letters messages
        over C{delivery_limit} (at-least-once).
    @param delivery_limit: the broker-side poison cap of a quorum queue
        (L{None}: none).
    @raise ValueError: for another queue type.
    """
    if _check(queue_type) == "classic":
        return {} if queue_type is None else {"x-queue-type": "classic"}
    args = _quorum(dead_letter_queue)
    if delivery_limit is not None:
        if delivery_limit < 1:
            raise ValueError("the delivery limit must be at least 1")
        args["x-delivery-limit"] = delivery_limit
    return args


def dead_letter_arguments(queue_type: str | None) -> dict[str, Any]:
    """
    The arguments of a dead-letter queue (the end of the line: it
    dead-letters nothing further).
    """
    if _check(queue_type) == "classic":
        return {} if queue_type is None else {"x-queue-type": "classic"}
    return _quorum(None)
