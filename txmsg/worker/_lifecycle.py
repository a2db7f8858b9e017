# -*- test-case-name: txmsg.test.test_worker_lifecycle -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Steps of a worker's life that are not about tasks: saying when it really
consumes, and the steps of its drain that must never skip the ones after
them (stopping the consumers, removing the registry entry), each of which
logs what went wrong in one line and returns normally.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from twisted.internet.defer import Deferred, DeferredList, FirstError, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.worker.roster import unregister_worker

__all__ = ["announce_consuming", "drain_consumers", "one_line", "unregister_logged"]


def one_line(failure: Failure) -> str:
    """
    C{Type: message} of C{failure}, unwrapping the C{FirstError} of a
    C{gatherResults} so that the real cause is named, on one line.
    """
    while failure.check(FirstError):
        failure = cast(FirstError, failure.value).subFailure
    name = failure.type.__name__ if failure.type else "Error"
    message = " ".join(failure.getErrorMessage().split())
    return "{}: {}".format(name, message) if message else name


def announce_consuming(
    name: str, consumers: Iterable[Any], log: Logger, **details: Any
) -> Deferred[Any]:
    """
    Log that worker C{name} is connecting now, and that it consumes once
    every consumer has registered with the broker (not before: the broker
    may be unreachable).

    @param details: C{queues}, C{prefetch}, C{concurrency}, C{tasks} (text).
    """
    log.info(
        "Worker {name} connecting: will consume {queues} (prefetch {prefetch}, "
        "{concurrency} threads, tasks: {tasks})",
        name=name,
        **details,
    )
    d = DeferredList(
        [c.when_consuming() for c in consumers], fireOnOneErrback=True, consumeErrors=True
    )
    d.addCallback(
        lambda _: log.info("Worker {name} consuming {queues}", name=name, queues=details["queues"])
    )
    return d.addErrback(lambda f: None)


async def drain_consumers(consumers: Iterable[Any], log: Logger) -> None:
    """
    Stop every consumer at once and wait until each has finished its
    handlers and settled its deliveries; a consumer that fails to stop is
    logged.
    """
    consumers = list(consumers)
    results = await DeferredList([maybeDeferred(c.stop) for c in consumers], consumeErrors=True)
    for consumer, (ok, result) in zip(consumers, results, strict=True):
        if not ok:
            log.warn(
                "Stopping {consumer!r} failed: {reason}",
                consumer=consumer,
                reason=one_line(result),
            )


async def unregister_logged(redis: Any, name: str, log: Logger) -> bool:
    """
    Remove worker C{name} from the registry through C{redis} (a
    L{txmsg.redis.RedisService}); log the outcome.

    @return: whether the entry was removed.
    """
    try:
        await maybeDeferred(lambda: unregister_worker(redis.handler, name))
    except Exception:
        log.warn(
            "Worker {name} could not remove itself from the worker registry: {reason}; "
            "the entry expires on its own",
            name=name,
            reason=one_line(Failure()),
        )
        return False
    log.info("Worker {name} removed from the worker registry", name=name)
    return True
