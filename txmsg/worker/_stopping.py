# -*- test-case-name: txmsg.test.test_worker_stopping -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The steps of a worker's drain that must never skip the ones after them:
stopping the consumers and removing the worker's registry entry.  Each logs
what went wrong, in one line, and returns normally.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.worker.registry import unregister_worker

__all__ = ["drain_consumers", "one_line", "unregister_logged"]


def one_line(failure: Failure) -> str:
    """
    C{Type: message} of C{failure}, unwrapping the C{FirstError} of a
    C{gatherResults} so that the real cause is named, on one line.
    """
    from twisted.internet.defer import FirstError

    while failure.check(FirstError):
        failure = failure.value.subFailure
    name = failure.type.__name__ if failure.type else "Error"
    message = " ".join(failure.getErrorMessage().split())
    return "{}: {}".format(name, message) if message else name


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
