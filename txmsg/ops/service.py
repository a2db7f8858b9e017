# -*- test-case-name: txmsg.test.test_ops_options,txmsg.test.test_ops_metrics -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{HealthService}: the C{/live}, C{/ready} and C{/metrics} listener with its
reactor-lag monitor, and the readiness checks of the echo server and the
worker.

    health = worker_health(worker, "tcp:8081:interface=127.0.0.1")
    health.setServiceParent(worker)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, cast

from prometheus_client import CollectorRegistry
from twisted.application.service import MultiService
from twisted.internet.interfaces import (
    IAddress,
    IReactorCore,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Site

from txmsg._reactor import maybe_global_reactor
from txmsg.net.listen import listening_service
from txmsg.ops.health import Check, HealthRoot
from txmsg.ops.lag import ReactorLagMonitor
from txmsg.ops.metrics import echo_registry, scheduler_registry, worker_registry

__all__ = [
    "HealthService",
    "echo_checks",
    "serve_web",
    "echo_health",
    "scheduler_health",
    "worker_checks",
    "worker_health",
]


def serve_web(
    parent: MultiService,
    reactor: IReactorTime,
    endpoint: str,
    resource: IResource,
    announce: Callable[[IAddress], None],
) -> Site:
    """
    Serve C{resource} on C{endpoint}: a quiet C{Site} (no tracebacks to
    clients, no access log: one line per probe or page poll would drown the
    useful ones) and its listener, added to C{parent} as child
    C{"listener"}.

    @param announce: called with the bound address once it listens.
    @return: the site.
    """
    site = Site(resource)
    site.noisy = False
    site.displayTracebacks = False
    site.log = lambda request: None  # type: ignore[method-assign]
    # a reactor that listens provides IReactorCore too (see txmsg._reactor)
    listener = listening_service(cast(IReactorCore, reactor), endpoint, site, announce=announce)
    listener.setName("listener")
    listener.setServiceParent(parent)
    return site


class HealthService(MultiService):
    """
    A reactor-lag monitor (child C{"lag"}) and an HTTP listener (child
    C{"listener"}) serving C{/live}, C{/ready} and C{/metrics}.

    @ivar lag: the L{ReactorLagMonitor}.
    @ivar registry: the C{prometheus_client.CollectorRegistry} served.
    @ivar site: the C{twisted.web.server.Site}.
    @ivar address: the address the listener is bound to, once it listens.
    """

    log = Logger()

    def __init__(
        self,
        endpoint: str,
        registry_factory: Callable[[ReactorLagMonitor], CollectorRegistry],
        checks: Callable[[], Iterable[Check]],
        *,
        reactor: IReactorTime | None = None,
        lag_interval: float = 1.0,
    ) -> None:
        """
        @param endpoint: a server endpoint string (C{tcp:8081:interface=127.0.0.1}).
        @param registry_factory: builds the registry from the lag monitor.
        @param checks: the readiness checks, called for each C{/ready}.
        @param reactor: the reactor (default: the global one).
        @param lag_interval: seconds between reactor-lag ticks.
        """
        super().__init__()
        reactor = maybe_global_reactor(reactor)
        self.lag = ReactorLagMonitor(lag_interval, reactor=reactor)
        self.lag.setName("lag")
        self.lag.setServiceParent(self)
        self.registry = registry_factory(self.lag)
        self.address: IAddress | None = None
        self.site = serve_web(
            self,
            reactor,
            endpoint,
            HealthRoot(self.lag, checks, self.registry),
            partial(self._listening, endpoint),
        )
        self.listener = self.getServiceNamed("listener")

    def _listening(self, description: str, address: IAddress) -> None:
        self.address = address
        self.log.info(
            "txmsg health endpoint listening on {description} ({host}:{port})",
            description=description,
            host=getattr(address, "host", address),
            port=getattr(address, "port", ""),
        )


def echo_checks(echo: Any) -> Callable[[], list[Check]]:
    """
    Readiness of an L{txmsg.tap.echo.EchoService}: running, and every
    listener listening.
    """

    def checks() -> list[Check]:
        result = [Check("echo", bool(echo.running), "running" if echo.running else "not running")]
        for child in echo:
            if child.name and child.name.startswith(("listen:", "udp:")):
                result.append(
                    Check(
                        child.name,
                        bool(child.running),
                        "listening" if child.running else "not listening",
                    )
                )
        return result

    return checks


def worker_checks(worker: Any) -> Callable[[], list[Check]]:
    """
    Readiness of a L{txmsg.worker.service.WorkerService}: running (not
    paused, starting or stopping), the AMQP connection ready, a broker
    consumer active on every queue, and (when configured) both Redis
    connections up.
    """

    def checks() -> list[Check]:
        result = [Check("worker", worker.state == "running", "state: " + worker.state)]
        amqp = worker.amqp
        if amqp is not None:  # None on Redis Streams (the redis checks cover it)
            up = amqp.connection is not None
            result.append(
                Check(
                    "amqp",
                    up,
                    ("connected to " if up else "not connected to ") + amqp.address.redacted
                    if up or getattr(amqp, "setup_failure", None) is None
                    else str(amqp.setup_failure),
                )
            )
        consumers = worker.consumers
        for queue in worker.queues:
            consumer = consumers.get(queue)
            consuming = consumer is not None and consumer.consuming
            result.append(
                Check(
                    "consumer:" + queue,
                    consuming,
                    "consuming" if consuming else "not consuming",
                )
            )
        redis = worker.redis
        if redis is not None:
            for role, state in (
                ("commands", redis.connection.state),
                ("pubsub", redis.pubsub.state),
            ):
                result.append(Check("redis:" + role, bool(state.is_connected), state.describe()))
        return result

    return checks


def worker_health(
    worker: Any, endpoint: str, *, reactor: IReactorTime | None = None, lag_interval: float = 1.0
) -> HealthService:
    """
    A L{HealthService} for a worker (add it to the worker's service tree).
    """
    return HealthService(
        endpoint,
        lambda lag: worker_registry(worker, lag),
        worker_checks(worker),
        reactor=reactor,
        lag_interval=lag_interval,
    )


def echo_health(
    echo: Any, endpoint: str, *, reactor: IReactorTime | None = None, lag_interval: float = 1.0
) -> HealthService:
    """
    A L{HealthService} for an echo service (add it to the echo service tree).
    """
    return HealthService(
        endpoint,
        lambda lag: echo_registry(echo.factory, lag),
        echo_checks(echo),
        reactor=reactor,
        lag_interval=lag_interval,
    )


def scheduler_health(
    scheduler: Any,
    amqp: Any,
    redis: Any,
    endpoint: str,
    *,
    reactor: IReactorTime | None = None,
) -> HealthService:
    """
    A L{HealthService} for a scheduler: ready when its AMQP connection (and
    Redis, when it has one) is up; C{/ready} also says whether it leads.
    """

    def checks() -> list[Check]:
        up = amqp.connection is not None
        result = [
            Check(
                "amqp",
                up,
                ("connected to " if up else "not connected to ") + amqp.address.redacted,
            ),
            Check("leader", True, "leading" if scheduler.leading else "standing by"),
        ]
        if redis is not None:
            state = redis.connection.state
            result.append(Check("redis:commands", bool(state.is_connected), state.describe()))
        return result

    def registry(lag: ReactorLagMonitor) -> CollectorRegistry:
        return scheduler_registry(amqp, redis, lag)

    return HealthService(endpoint, registry, checks, reactor=reactor)
