# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The task worker service: consume tasks from a broker, run them through the
event registry, ack only after their outcome is settled.

L{WorkerService} only wires the parts below and starts and stops them.  A
delivery goes from the broker (L{txmsg.worker.brokers}) through the
pipeline (L{txmsg.worker.pipeline}: checks, the task run) to a decision
(L{txmsg.worker.decisions}, pure) that the settlement carries out
(L{txmsg.worker.settlement}: publish with confirm, then ack).  Control
commands: L{txmsg.worker.control}; idempotency keys:
L{txmsg.worker.idempotency}; heartbeat and lag check:
L{txmsg.worker.heartbeat}; the shutdown grace period:
L{txmsg.worker.shutdown}.  See C{docs/worker.md}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txmsg._reactor import maybe_global_reactor
from txmsg.amqp import AMQPConnection
from txmsg.events import EventRegistry
from txmsg.ordered import stop_in_order
from txmsg.redis import RedisService
from txmsg.redis.url import is_redis_url
from txmsg.worker._lifecycle import announce_consuming, drain_consumers, unregister_logged
from txmsg.worker._stats import WorkerStats
from txmsg.worker.brokers.amqp import AMQPWorkerBroker
from txmsg.worker.brokers.interfaces import IWorkerBroker
from txmsg.worker.brokers.redis_streams import RedisStreamsBroker
from txmsg.worker.client import TaskClient
from txmsg.worker.control import WorkerControl

# The dead-letter header names, importable from here as before.
from txmsg.worker.headers import *  # noqa: F403
from txmsg.worker.heartbeat import WorkerTimers
from txmsg.worker.idempotency import IdempotencyKeys
from txmsg.worker.pipeline import DeliveryPipeline
from txmsg.worker.result_recorder import ResultRecorder
from txmsg.worker.results import DEFAULT_TTL, RedisResultStore
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.roster import default_worker_name
from txmsg.worker.settlement import Settlement
from txmsg.worker.shutdown import GracePeriod
from txmsg.worker.tasks import TaskCatalog, TaskContext
from txmsg.worker.threads import TaskThreads
from txmsg.worker.workflow_steps import WorkflowSteps

__all__ = ["WorkerService", "default_worker_name"]


class WorkerService(MultiService):
    """
    Consume tasks from one or more queues and run them.

    @ivar name: the worker name (its control channel is C{rq:pubsub:<name>}).
    @ivar stats: running counters, see L{WorkerStats}.
    @ivar amqp: the L{txmsg.amqp.AMQPConnection} (child C{"amqp"}).
    @ivar broker: the L{IWorkerBroker} deliveries come from and are settled on.
    @ivar redis: the L{txmsg.redis.RedisService} (child C{"redis"}) or L{None}.
    @ivar events: the L{txmsg.events.EventRegistry} tasks are dispatched on.
    @ivar pipeline: the L{DeliveryPipeline} every delivery goes through.
    @ivar control: the L{WorkerControl} answering control commands.
    """

    log = Logger()

    def __init__(
        self,
        tasks: TaskCatalog,
        *,
        queues: Iterable[str] = ("tasks",),
        raw_handlers: Mapping[str, Callable[[bytes], Any]] | None = None,
        amqp_url: str | None = None,
        redis_url: str | None = None,
        name: str | None = None,
        prefetch: int = 1,
        concurrency: int = 4,
        grace: float = 30.0,
        retry: RetryPolicy | None = None,
        heartbeat: float = 5.0,
        lag_warning: float = 0.5,
        on_shutdown: Callable[[], Any] | None = None,
        handle_signals: bool = False,
        queue_type: str | None = None,
        max_priority: int | None = None,
        transactions: bool | None = None,
        events: EventRegistry | None = None,
        reactor: IReactorTime | None = None,
        amqp: AMQPConnection | None = None,
        redis: RedisService | None = None,
        threadpool: Any = None,
        results_url: str | None = None,
        results_ttl: int = DEFAULT_TTL,
        results: RedisResultStore | None = None,
        broker_url: str | None = None,
        visibility_timeout: float = 30.0,
    ) -> None:
        """
        @param tasks: the tasks this worker runs.
        @param queues: the work queues (each gets C{.dead}, and is bound to
            the broker's delay levels).
        @param raw_handlers: queue name -> function called with the body
            bytes, for queues of plain messages (a coroutine function runs on
            the reactor, any other in the thread pool).
        @param amqp_url: the broker (default C{$TXMSG_AMQP_URL}); or C{amqp},
            an existing L{txmsg.amqp.AMQPConnection}.
        @param redis_url: Redis for the control channel and worker registry;
            or C{redis}, an existing L{txmsg.redis.RedisService}; else none.
        @param name: the worker name (default C{<host>.<pid>}).
        @param prefetch: unacked deliveries per queue (1: fair dispatch).
        @param concurrency: threads for blocking tasks (or C{threadpool}, a
            thread pool that the caller starts and stops; see L{TaskThreads}).
        @param grace: seconds running tasks get to finish when stopping.
        @param retry: the default L{RetryPolicy}.
        @param heartbeat: seconds between worker-registry updates.
        @param lag_warning: warn when the reactor is this many seconds late.
        @param on_shutdown: called for the C{shutdown} control command
            (default: stop this service); C{twistd} passes C{reactor.stop}.
        @param handle_signals: when stopping, a second SIGTERM/SIGINT ends
            the grace period (for C{twistd}).
        @param queue_type: C{x-queue-type} of the work and dead-letter
            queues and of the delay levels, e.g. C{"quorum"} (see
            L{txmsg.amqp.queue_types}).
        @param max_priority: declare the work queues with this
            C{x-max-priority} (1 to 255): tasks sent with a higher
            C{priority} run first.
        @param transactions: on RabbitMQ, L{True}: consume on a
            transactional channel and publish each reply to an ordinary
            queue in one AMQP transaction with its ack (one round trip per
            reply instead of two); L{False}: plain acks and confirmed
            replies, cheaper for tasks without replies or with replies to
            direct reply-to (as L{txmsg.worker.client.TaskClient.call}
            uses); L{None} (the default): each queue's consumer moves
            between the two as the share of tasks replying to an ordinary
            queue changes (L{txmsg.worker.brokers.transaction_choice}).
        @param events: the L{txmsg.events.EventRegistry} (default: a new one).
        @param reactor: the reactor (default: the global one).
        @param results_url: Redis for task states and results (the same
            connection as C{redis_url} when equal); or C{results}, an
            existing L{RedisResultStore}; else no results are stored.
        @param results_ttl: seconds a task's state is kept (default 24 h).
        @param broker_url: a C{redis://}, C{rediss://} or C{unix://} URL:
            the worker's broker is Redis Streams there
            (L{txmsg.worker.brokers.redis_streams}; no RabbitMQ), which also
            serves the control channel unless C{redis_url} names another.
        @param visibility_timeout: Redis Streams only: seconds before other
            workers claim the entries of a worker that stopped answering.
        """
        super().__init__()
        reactor = maybe_global_reactor(reactor)
        if prefetch < 1 or concurrency < 1 or grace < 0:
            raise ValueError("need prefetch >= 1, concurrency >= 1, grace >= 0")
        self.clock = self._reactor = reactor
        self.tasks = tasks
        self.raw_handlers = dict(raw_handlers or {})
        self.queues = list(dict.fromkeys(list(queues) + list(self.raw_handlers)))
        if not self.queues:
            raise ValueError("a worker needs at least one queue")
        self.name = name or default_worker_name()
        self.prefetch, self.concurrency, self.grace = prefetch, concurrency, grace
        self.retry = retry or RetryPolicy()
        self.queue_type = queue_type
        self._handle_signals = handle_signals
        self.stats = WorkerStats(clock=reactor)
        self.state = "stopped"
        self._consumers: dict[str, Any] = {}
        self.threads = TaskThreads(reactor, concurrency, threadpool)
        self._listening = False
        self.events = events if events is not None else EventRegistry(reactor=reactor)
        streams = None
        if broker_url is not None and is_redis_url(broker_url):
            streams = RedisStreamsBroker(
                broker_url,
                self.name,
                visibility_timeout=visibility_timeout,
                max_priority=max_priority,
                reactor=reactor,
                events=self.events,
            )
            if redis is None and redis_url is None:
                redis_url = broker_url
        elif broker_url is not None:
            amqp_url = broker_url
        if amqp is None and streams is None:
            amqp = AMQPConnection(
                amqp_url,
                reactor=reactor,
                events=self.events,
                connection_name="txmsg-worker " + self.name,
            )
        self.amqp: AMQPConnection | None = amqp
        if redis is None and redis_url is not None:
            redis = RedisService(redis_url, reactor=reactor, events=self.events)
        self.redis = redis
        for child, child_name in ((amqp, "amqp"), (streams, "redis-streams"), (redis, "redis")):
            if child is not None and child.parent is None:
                child.setName(child_name)
                child.setServiceParent(self)
        if results is None and results_url is not None:
            if redis is not None and results_url == redis_url:
                results_redis = redis
            else:
                results_redis = RedisService(results_url, reactor=reactor, events=self.events)
            results = RedisResultStore(results_redis, ttl=results_ttl, clock=reactor)
        if results is not None and results.redis.parent is None:
            results.redis.setName("results")
            results.redis.setServiceParent(self)
        #: The L{RedisResultStore} task states are recorded in, or L{None}.
        self.results = results
        self.broker: IWorkerBroker = (
            streams
            if streams is not None
            else AMQPWorkerBroker(cast(AMQPConnection, amqp), self.name, max_priority, transactions)
        )
        self.idempotency = IdempotencyKeys(redis, self.name)
        self.pipeline = DeliveryPipeline(
            tasks=tasks,
            events=self.events,
            settlement=Settlement(self.broker, reactor, self.retry.initial_delay),
            stats=self.stats,
            retry=self.retry,
            idempotency=self.idempotency,
            raw_handlers=self.raw_handlers,
            worker_name=self.name,
            source=self.broker.name,
            results=None
            if results is None
            else ResultRecorder(
                results, self.name, lambda: self.running_tasks, self.retry.initial_delay
            ),
        )
        if results is not None and amqp is not None:  # the next stages go out over AMQP
            self.pipeline.workflows = WorkflowSteps(
                results, TaskClient(amqp), self.idempotency, self.retry.initial_delay
            )
        self.control = WorkerControl(self, on_shutdown)
        self.timers = WorkerTimers(
            reactor,
            self.stats,
            self.status,
            name=self.name,
            redis=redis,
            heartbeat=heartbeat,
            lag_warning=lag_warning,
        )
        self.grace_period = GracePeriod(reactor, lambda: self.running_tasks)
        # Older names of the control commands.
        self._control_pause, self._control_resume = self.control.pause, self.control.resume

    @property
    def running_tasks(self) -> dict[str, TaskContext]:
        """
        The running tasks, by task id.
        """
        return self.pipeline.running

    @property
    def consumers(self) -> dict[str, Any]:
        """
        The active consumer of each queue (none while paused or stopped):
        what health checks and metrics read.
        """
        return dict(self._consumers)

    def status(self) -> dict[str, Any]:
        """
        What the worker is doing (see L{WorkerControl.status}).
        """
        return self.control.status()

    def retry_steps(self) -> list[float]:
        """
        Every delay a task of this worker can retry after.
        """
        return self.pipeline.retry_delays()

    # -- IService -------------------------------------------------------------

    def startService(self) -> None:
        """
        Declare the queues, start the connections, the thread pool, the
        consumers and the timers.
        """
        self.state = "starting"
        for queue in self.queues:
            raw = queue in self.raw_handlers
            self.broker.declare(queue, [] if raw else self.retry_steps(), self.queue_type)
        if self.redis is not None and not self._listening:
            self._listening = True
            self.redis.control_listener(str(self.name), self.control.handlers(), status=self.status)
        self.threads.start()
        self.pipeline.install(self.threads.run)  # warns about idempotency without Redis
        super().startService()
        if self.pipeline.results is not None:
            self.pipeline.results.start()
        for queue in self.queues:
            self._consumers[queue] = self._consume(queue)
        self.state = "running"
        self.timers.start()
        announce_consuming(
            str(self.name),
            self._consumers.values(),
            self.log,
            queues=", ".join(self.queues),
            prefetch=self.prefetch,
            concurrency=self.concurrency,
            tasks=", ".join(self.tasks.names()) or "none",
        )

    def pause(self) -> None:
        """
        Stop consuming; running tasks go on.
        """
        self.state = "paused"
        consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            consumer.stop()

    def resume(self) -> None:
        """
        Consume again after L{pause}.
        """
        for queue in self.queues:
            self._consumers[queue] = self._consume(queue)
        self.state = "running"

    def stopService(self) -> Deferred[None]:
        """
        Drain: stop taking tasks, give running tasks up to C{grace} seconds,
        cancel and requeue what is left, then close the connections.
        """
        self.state = "stopping"
        self.log.info(
            "Worker {name} stopping: waiting up to {grace}s for {n} running task(s)",
            name=self.name,
            grace=self.grace,
            n=len(self.running_tasks),
        )
        self.grace_period.start(self.grace, self._handle_signals)
        self.timers.stop()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        consumers, self._consumers = list(self._consumers.values()), {}
        await drain_consumers(consumers, self.log)
        self.grace_period.cancel()
        if self.pipeline.results is not None:
            self.pipeline.results.stop()
        self.log.info("Worker {name} drained", name=self.name)
        if self.redis is not None:
            await unregister_logged(self.redis, str(self.name), self.log)
        # Stop the AMQP connection (flushes acks and confirms), then Redis,
        # then whatever else was added; not all at once as MultiService would.
        # Only our own children: a shared RedisService (passed in, with
        # another parent) is stopped by its owner, after this worker.
        own = [s for s in [self.amqp, self.redis] + list(self) if s is not None]
        await stop_in_order(dict.fromkeys(s for s in own if s.parent is self), self.log)
        Service.stopService(self)
        self.pipeline.uninstall()
        self.threads.stop()
        self.state = "stopped"
        self.log.info("Worker {name} stopped", name=self.name)

    def _consume(self, queue: str) -> Any:
        # What arrives after the consumer stopped goes back uncounted.
        pipeline = self.pipeline
        return self.broker.consume(queue, pipeline.handle, self.prefetch, pipeline.give_back)
