# -*- test-case-name: txmsg.test.test_ordered -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Stopping services in a safe order.

A plain C{MultiService} stops all its children at once.  That is wrong when
one child uses another: a worker that shares a Redis connection with the
rest of an application must drain (finish its tasks, remove its registry
entry) while that connection is still up.  L{OrderedMultiService} stops a
child only after every child that uses it has stopped:

    top = OrderedMultiService()
    redis.setServiceParent(top)
    worker.setServiceParent(top)
    top.uses(worker, redis)        # the worker stops first, then Redis

Each stop step that fails is logged and the next ones still run: one broken
service never keeps the others (or the drain) from stopping.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["OrderedMultiService", "stop_in_order", "stop_logged"]

_log = Logger(namespace="txmsg.ordered")


def stop_logged(service: IService, log: Logger | None = None) -> Deferred[None]:
    """
    Stop C{service} if it is running; a failure (raised or in the returned
    Deferred) is logged with the service's name and swallowed.

    @return: a Deferred that fires with L{None} once the service stopped or
        failed to.
    """
    logger = log if log is not None else _log
    if not service.running:
        return succeed(None)

    def failed(f: Failure) -> None:
        logger.failure(
            "Stopping {service} failed; stopping the rest anyway",
            f,
            service=_describe(service),
        )

    return maybeDeferred(service.stopService).addCallbacks(lambda _: None, failed)


async def stop_in_order(services: Iterable[IService | None], log: Logger | None = None) -> None:
    """
    Stop C{services} one after the other (L{None} entries are skipped),
    each through L{stop_logged}: a failed step does not skip the next.
    """
    for service in services:
        if service is not None:
            await stop_logged(service, log)


def _describe(service: IService) -> str:
    name = getattr(service, "name", None)
    kind = type(service).__name__
    return "{} {!r}".format(kind, name) if name else kind


class OrderedMultiService(MultiService):
    """
    A C{MultiService} that stops a child only after every child that uses
    it (see L{uses}) has stopped.  Children unrelated to each other stop
    together, like C{MultiService}'s; a failing child is logged and does not
    keep the others from stopping.
    """

    log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self._uses: dict[IService, list[IService]] = {}

    def uses(self, user: IService, *used: IService) -> None:
        """
        Declare that C{user} uses each of C{used}: when stopping, C{user}
        stops first and the services it uses only once it has stopped.
        """
        self._uses.setdefault(user, []).extend(used)

    def stop_order(self) -> list[list[IService]]:
        """
        The children in the waves they stop in: each wave starts once the
        one before it has stopped.  Within the constraints, later children
        stop first (as with C{MultiService}).  A cycle is broken by stopping
        the rest together.
        """
        remaining = list(reversed(list(self)))
        waves = []
        while remaining:
            wave = [
                s
                for s in remaining
                if not any(s in self._uses.get(other, ()) for other in remaining if other is not s)
            ]
            if not wave:
                self.log.warn(
                    "Services use each other in a cycle: stopping {services} together",
                    services=", ".join(_describe(s) for s in remaining),
                )
                wave = remaining
            waves.append(wave)
            remaining = [s for s in remaining if s not in wave]
        return waves

    def stopService(self) -> Deferred[None]:
        """
        Stop the children wave by wave (see L{stop_order}).
        """
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_waves())

    async def _stop_waves(self) -> None:
        for wave in self.stop_order():
            await DeferredList([stop_logged(s, self.log) for s in wave])
