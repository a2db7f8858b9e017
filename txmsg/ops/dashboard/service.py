# -*- test-case-name: txmsg.test.test_tap_dashboard -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The dashboard as a service (C{twistd txmsg-dashboard}) and mounted on a
worker's health port.

    dashboard = DashboardService(amqp_url=..., redis_url=..., endpoint="tcp:8082")
    dashboard.setServiceParent(application)

    mount_on_health(health, worker)      # /dashboard/ beside /metrics
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.resource import IResource

from txmsg._reactor import maybe_global_reactor
from txmsg.amqp.connection import AMQPConnection
from txmsg.ops.dashboard._auth import is_loopback_endpoint, protect
from txmsg.ops.dashboard._metrics import QueueCollector, dashboard_registry
from txmsg.ops.dashboard._resources import DashboardRoot
from txmsg.ops.dashboard._sampler import QueueSampler
from txmsg.ops.dashboard._schedule import schedule_view
from txmsg.ops.dashboard._stats import ManagementStats, PassiveDeclareStats
from txmsg.ops.service import serve_web
from txmsg.ordered import OrderedMultiService
from txmsg.redis._common import handler_of
from txmsg.redis.connection import RedisConnection
from txmsg.worker.roster import list_workers

__all__ = ["DashboardService", "check_dashboard_mount", "mount_on_health"]


class DashboardService(OrderedMultiService):
    """
    The dashboard's connections (children C{amqp}, C{redis}), its sampler
    (C{sampler}) and its HTTP listener (C{listener}).

    @ivar root: the L{DashboardRoot}.
    @ivar site: the C{Site} serving it (behind authentication when
        checkers were given).
    @ivar address: where the listener is bound, once it listens.
    """

    log = Logger()

    def __init__(
        self,
        endpoint: str,
        *,
        amqp_url: str | None = None,
        redis_url: str | None = None,
        management_url: str | None = None,
        queues: Iterable[str] = (),
        interval: float = 5.0,
        history: float = 3600.0,
        read_only: bool = False,
        checkers: list[Any] | None = None,
        results: Any = None,
        schedule: Any = None,
        schedule_name: str = "default",
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        @param endpoint: a server endpoint string (already checked).
        @param amqp_url: RabbitMQ (default: C{$TXMSG_AMQP_URL} or local).
        @param redis_url: Redis for the worker roster (none: no workers shown).
        @param management_url: the management API (none: passive declares).
        @param queues: work queues always shown.
        @param interval: seconds between samples.
        @param history: seconds of history kept per queue.
        @param read_only: no actions.
        @param checkers: C{twisted.cred} checkers; when given, every request
            needs HTTP basic credentials.
        @param results: C{results(task_id)} for the task page.
        @param schedule: the L{txmsg.schedule.Schedule} shown on the
            schedule page (its last firings need C{redis_url}).
        @param schedule_name: that schedule's name.
        @param reactor: the reactor.
        """
        super().__init__()
        reactor = maybe_global_reactor(reactor)
        self.amqp = AMQPConnection(amqp_url, reactor=reactor, connection_name="txmsg dashboard")
        self.amqp.setName("amqp")
        self.amqp.setServiceParent(self)
        self.redis: RedisConnection | None = None
        workers = None
        if redis_url is not None:
            redis = self.redis = RedisConnection(redis_url, reactor=reactor)
            redis.setName("redis")
            redis.setServiceParent(self)

            def workers() -> Any:
                return list_workers(handler_of(redis))

        stats: Any
        if management_url is not None:
            vhost = self.amqp.address.parameters().virtual_host or "/"
            stats = ManagementStats(management_url, vhost, reactor=reactor)
        else:
            stats = PassiveDeclareStats(self.amqp)
        self.sampler = QueueSampler(
            stats, queues=queues, workers=workers, interval=interval, history=history, clock=reactor
        )
        self.sampler.setName("sampler")
        self.sampler.setServiceParent(self)
        self.root = DashboardRoot(
            self.sampler,
            self.amqp,
            read_only=read_only,
            results=results,
            registry=dashboard_registry(self.sampler),
            schedule=None
            if schedule is None
            else schedule_view(schedule, self.redis, schedule_name),
        )
        resource: IResource = self.root
        if checkers:
            resource = protect(self.root, checkers)
        self.address: IAddress | None = None
        # pages poll every few seconds; actions are logged by the dashboard
        self.site = serve_web(self, reactor, endpoint, resource, partial(self._listening, endpoint))
        self.listener = self.getServiceNamed("listener")
        # The page stops first, then the sampler, then the connections.
        self.uses(self.listener, self.sampler)
        self.uses(self.sampler, *[s for s in (self.amqp, self.redis) if s is not None])

    def _listening(self, description: str, address: IAddress) -> None:
        self.address = address
        self.log.info(
            "txmsg dashboard on http://{host}:{port}/ ({description})",
            description=description,
            host=getattr(address, "host", address),
            port=getattr(address, "port", ""),
        )


def check_dashboard_mount(health: str | None) -> None:
    """
    Refuse C{--dashboard} without a loopback C{--health} endpoint: the
    health port has no credentials, and the dashboard can act.

    @raise usage.UsageError: one line saying what to do instead.
    """
    if health is None:
        raise usage.UsageError("--dashboard needs --health ENDPOINT (it is served there)")
    if not is_loopback_endpoint(health):
        raise usage.UsageError(
            "--dashboard needs a loopback --health endpoint (it has no credentials); "
            "for remote access run twistd txmsg-dashboard with --auth-file"
        )


def mount_on_health(
    health: Any, worker: Any, *, read_only: bool = False, interval: float = 5.0
) -> DashboardRoot:
    """
    Serve the dashboard at C{/dashboard/} on a worker's health listener, from
    the worker's own connections; its queue metrics join C{/metrics}.

    @param health: the worker's L{txmsg.ops.service.HealthService}.
    @param worker: the L{txmsg.worker.service.WorkerService}.
    @return: the mounted root.
    """
    redis = worker.redis

    def workers() -> Any:
        if redis is not None:
            return list_workers(handler_of(redis))
        return succeed([worker.status()])

    sampler = QueueSampler(
        PassiveDeclareStats(worker.amqp),
        queues=worker.queues,
        workers=workers,
        interval=interval,
        clock=worker.clock,
    )
    sampler.setName("dashboard-sampler")
    sampler.setServiceParent(health)
    health.registry.register(QueueCollector(sampler))
    root = DashboardRoot(sampler, worker.amqp, read_only=read_only)
    health.site.resource.putChild(b"dashboard", root)
    return root
