# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The task worker service: consume tasks from RabbitMQ, run them through the
event registry, ack only after success.

For every delivery on a work queue C{Q}:

  1. the body is parsed as a v1 task (L{txmsg.worker.envelope}); a malformed
     message or an unknown task name goes to C{Q.dead} at once, with the
     reason in its headers;
  2. the task runs as the event C{task.<name>} on the worker's
     L{txmsg.events.EventRegistry} (on the reactor, or in the worker's thread
     pool for blocking tasks), under its time limit;
  3. success: the result goes to C{reply_to} (if any) with the same
     C{correlation_id}, then the delivery is acked;
  4. failure or timeout: the task is republished (with confirms) to the delay
     queue of its backoff step, C{Q.retry.<ms>ms}, whose messages expire back
     into C{Q}; after C{max_retries} retries it goes to C{Q.dead} with the
     error type, message, traceback summary and attempt count in headers; an
     error reply goes to C{reply_to}; only then is the delivery acked;
  5. if the result, retry or dead letter could not be published (the
     connection is gone), the delivery is not acked and the broker delivers
     it again: at-least-once.

Tasks cancelled by the control channel (C{stop-job}, C{kill-horse}) are not
retried: they go to C{Q.dead} with reason C{cancelled}.  Tasks still running
when the shutdown grace period ends are cancelled and requeued (nacked), so
they run again later, on this worker or another.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.ordered import stop_in_order
from txmsg.worker._lifecycle import (
    announce_consuming,
    drain_consumers,
    one_line,
    unregister_logged,
)
from txmsg.worker._stats import MALFORMED_TASK, RAW_TASK, UNKNOWN_TASK, WorkerStats
from txmsg.worker.envelope import (
    CONTENT_TYPE,
    MalformedTask,
    Task,
    decode_task,
    encode_error,
    encode_result,
)
from txmsg.worker.retry import (
    ATTEMPT_HEADER,
    RetryPolicy,
    dead_letter_queue_name,
    retry_queue_name,
)
from txmsg.worker.tasks import _CANCELLED, TaskContext, TaskRegistry

__all__ = ["WorkerService", "default_worker_name"]

#: Headers set on dead letters.
REASON_HEADER = "x-txmsg-reason"
ERROR_TYPE_HEADER = "x-txmsg-error-type"
ERROR_MESSAGE_HEADER = "x-txmsg-error-message"
TRACEBACK_HEADER = "x-txmsg-traceback"
QUEUE_HEADER = "x-txmsg-queue"
WORKER_HEADER = "x-txmsg-worker"
FAILED_AT_HEADER = "x-txmsg-failed-at"


def default_worker_name() -> str:
    """
    C{<host>.<pid>}: unique per process on a machine.
    """
    return "{}.{}".format(socket.gethostname(), os.getpid())


def _one_line(failure: Failure, timed_out: bool) -> str:
    if timed_out:
        return "timed out"
    name = failure.type.__name__ if failure.type else "Error"
    return "{}: {}".format(name, failure.getErrorMessage())


def _traceback_summary(failure: Failure, limit: int = 2000) -> str:
    text = "".join(traceback.format_exception_only(failure.type, failure.value)).strip()
    frames = failure.frames[-5:]
    lines = ["{}:{} in {}".format(f[1], f[2], f[0]) for f in frames]
    summary = "\n".join(lines + [text])
    return summary[-limit:]


class WorkerService(MultiService):
    """
    Consume tasks from one or more queues and run them.

    @ivar name: the worker name (its control channel is C{rq:pubsub:<name>}).
    @ivar stats: running counters, see L{WorkerStats}.
    @ivar amqp: the L{txmsg.amqp.AMQPConnection} (child C{"amqp"}).
    @ivar redis: the L{txmsg.redis.RedisService} (child C{"redis"}) or L{None}.
    @ivar events: the L{txmsg.events.EventRegistry} tasks are dispatched on.
    """

    log = Logger()

    def __init__(
        self,
        tasks: TaskRegistry,
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
        events: Any = None,
        reactor: Any = None,
        amqp: Any = None,
        redis: Any = None,
        threadpool: Any = None,
    ) -> None:
        """
        @param tasks: the tasks this worker runs.
        @param queues: the work queues to consume (each gets C{.retry.*} and
            C{.dead} companions).
        @param raw_handlers: queue name -> function called with the raw body
            bytes, for queues that carry plain messages rather than v1 tasks
            (the seeds' C{worker.py}); a coroutine function runs on the
            reactor, any other function in the thread pool.
        @param amqp_url: the broker (default C{$TXMSG_AMQP_URL}).
        @param redis_url: Redis for the control channel and the worker
            registry; L{None} (and no C{redis}) for none.
        @param name: the worker name (default C{<host>.<pid>}).
        @param prefetch: unacked deliveries per queue (1: fair dispatch).
        @param concurrency: threads for blocking tasks.
        @param grace: seconds running tasks get to finish when stopping.
        @param retry: the default L{RetryPolicy}.
        @param heartbeat: seconds between worker-registry updates in Redis.
        @param lag_warning: log a warning when the reactor is this many
            seconds late (something blocks it).
        @param on_shutdown: called for the C{shutdown} control command
            (default: stop this service).  C{twistd} passes C{reactor.stop}.
        @param handle_signals: when stopping, make a second SIGTERM/SIGINT
            cut the grace period short (for C{twistd}).
        @param queue_type: C{x-queue-type} of the work and dead-letter queues,
            e.g. C{"quorum"} for queues replicated across a RabbitMQ cluster
            (the delay queues stay classic: they only hold messages briefly).
            An existing queue keeps its type: RabbitMQ refuses to redeclare
            it as another.
        @param events: an L{txmsg.events.EventRegistry} to dispatch on
            (default: a new one).
        @param reactor: the reactor (default: the global one).
        @param amqp: an existing L{txmsg.amqp.AMQPConnection} to use instead
            of making one.
        @param redis: an existing L{txmsg.redis.RedisService}.
        @param threadpool: the thread pool for blocking tasks (default: one of
            C{concurrency} threads, started and stopped with the worker).
        """
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        if prefetch < 1 or concurrency < 1 or grace < 0:
            raise ValueError("need prefetch >= 1, concurrency >= 1, grace >= 0")
        self._reactor = reactor
        self.tasks = tasks
        self.raw_handlers = dict(raw_handlers or {})
        self.queues = list(dict.fromkeys(list(queues) + list(self.raw_handlers)))
        if not self.queues:
            raise ValueError("a worker needs at least one queue")
        self.name = name or default_worker_name()
        self.prefetch = prefetch
        self.concurrency = concurrency
        self.grace = grace
        self.retry = retry or RetryPolicy()
        self.heartbeat = heartbeat
        self.lag_warning = lag_warning
        self._on_shutdown = on_shutdown
        self._handle_signals = handle_signals
        self.queue_type = queue_type
        self.stats = WorkerStats(clock=reactor)
        self.state = "stopped"
        self._running: dict[str, TaskContext] = {}
        self._consumers: dict[str, Any] = {}
        self._threadpool: Any = threadpool
        self._own_threadpool = threadpool is None
        self._timers: list[LoopingCall] = []
        self._grace_call: Any = None
        self._task_handlers: dict[str, Any] = {}
        self.idempotency_ttl = 86400

        if events is None:
            from txmsg.events import EventRegistry

            events = EventRegistry(reactor=reactor)
        self.events = events

        if amqp is None:
            from txmsg.amqp import AMQPConnection

            amqp = AMQPConnection(
                amqp_url,
                reactor=reactor,
                events=events,
                connection_name="txmsg-worker " + self.name,
            )
        self.amqp = amqp
        if amqp.parent is None:
            amqp.setName("amqp")
            amqp.setServiceParent(self)

        if redis is None and redis_url is not None:
            from txmsg.redis import RedisService

            redis = RedisService(redis_url, reactor=reactor, events=events)
        self.redis = redis
        if redis is not None:
            if redis.parent is None:
                redis.setName("redis")
                redis.setServiceParent(self)
            redis.control_listener(
                self.name,
                {
                    "shutdown": self._control_shutdown,
                    "stop-job": self._control_stop_job,
                    "stop-execution": self._control_stop_job,
                    "kill-horse": self._control_kill_horse,
                    "pause": self._control_pause,
                    "resume": self._control_resume,
                },
                status=self.status,
            )
        self._declare_topology()

    # -- topology -----------------------------------------------------------

    def _declare_topology(self) -> None:
        from txmsg.amqp import Queue, queue_arguments

        declarations = []
        kind = queue_arguments(queue_type=self.queue_type) if self.queue_type else {}
        for queue in self.queues:
            declarations.append(Queue(queue, durable=True, arguments=dict(kind)))
            declarations.append(
                Queue(dead_letter_queue_name(queue), durable=True, arguments=dict(kind))
            )
            if queue in self.raw_handlers:
                continue
            for step in self.retry_steps():
                declarations.append(
                    Queue(
                        retry_queue_name(queue, step),
                        durable=True,
                        arguments=queue_arguments(
                            message_ttl=int(round(step * 1000)),
                            dead_letter_exchange="",
                            dead_letter_routing_key=queue,
                        ),
                    )
                )
        self.amqp.declare(*declarations)

    def retry_steps(self) -> list[float]:
        """
        Every backoff step any task of this worker can use (one delay queue
        per step and work queue).
        """
        steps = set(self.retry.steps())
        for name in self.tasks.names():
            spec = self.tasks.get(name)
            if spec is not None and spec.max_retries is not None:
                steps.update(self._policy(spec.max_retries).steps())
        return sorted(steps)

    def _policy(self, max_retries: int | None) -> RetryPolicy:
        if max_retries is None or max_retries == self.retry.max_retries:
            return self.retry
        from dataclasses import replace

        return replace(self.retry, max_retries=max_retries)

    # -- IService -------------------------------------------------------------

    def startService(self) -> None:
        """
        Start the connections, the thread pool and the consumers.
        """
        from twisted.python.threadpool import ThreadPool

        self.state = "starting"
        if self._own_threadpool:
            self._threadpool = ThreadPool(
                minthreads=0, maxthreads=self.concurrency, name="txmsg-worker"
            )
            self._threadpool.start()
        self._task_handlers = self.tasks.install(self.events, self._run_in_thread)
        for queue, function in self.raw_handlers.items():
            self.events.add("raw." + queue, self._raw_adapter(function))
        super().startService()
        for queue in self.queues:
            self._start_consumer(queue)
        idempotent = [n for n in self.tasks.names() if self.tasks.get(n).idempotent]  # type: ignore[union-attr]
        if idempotent and self.redis is None:
            self.log.warn(
                "Tasks {tasks} are declared idempotent, but this worker has no Redis "
                "(--redis): they may run more than once per id",
                tasks=", ".join(idempotent),
            )
        self.state = "running"
        self.stats.start_ticking(self._reactor.seconds())
        self._start_timer(self._check_lag, 1.0)
        if self.redis is not None:
            self._start_timer(self._beat, self.heartbeat, now=True)
        announce_consuming(
            self.name,
            self._consumers.values(),
            self.log,
            queues=", ".join(self.queues),
            prefetch=self.prefetch,
            concurrency=self.concurrency,
            tasks=", ".join(self.tasks.names()) or "none",
        )

    def _start_consumer(self, queue: str) -> None:
        from txmsg.amqp import ErrorPolicy

        self._consumers[queue] = self.amqp.consume(
            queue,
            lambda delivery, queue=queue: self._on_delivery(queue, delivery),
            prefetch=self.prefetch,
            on_error=ErrorPolicy.REQUEUE,
        )

    def _start_timer(self, function: Callable[[], Any], interval: float, now: bool = False) -> None:
        loop = LoopingCall(function)
        loop.clock = self._reactor
        self._timers.append(loop)
        loop.start(interval, now=now).addErrback(
            lambda f: self.log.failure("Worker timer failed", f)
        )

    def stopService(self) -> Deferred[None]:
        """
        Drain: stop taking tasks, give running tasks up to C{grace} seconds,
        cancel and requeue what is left, then close the connections.
        """
        self.state = "stopping"
        running = len(self._running)
        self.log.info(
            "Worker {name} stopping: waiting up to {grace}s for {n} running task(s)",
            name=self.name,
            grace=self.grace,
            n=running,
        )
        self._grace_call = self._reactor.callLater(self.grace, self._grace_expired)
        if self._handle_signals:
            self._install_second_signal()
        for loop in self._timers:
            if loop.running:
                loop.stop()
        self._timers = []
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        consumers, self._consumers = list(self._consumers.values()), {}
        await drain_consumers(consumers, self.log)
        if self._grace_call is not None and self._grace_call.active():
            self._grace_call.cancel()
        self._grace_call = None
        self.log.info("Worker {name} drained", name=self.name)
        if self.redis is not None:
            await unregister_logged(self.redis, self.name, self.log)
        # Stop the AMQP connection (flushes acks and confirms), then Redis,
        # then whatever else was added; not all at once as MultiService would.
        # Only our own children: a shared RedisService (passed in, with
        # another parent) is stopped by its owner, after this worker.
        own = [s for s in [self.amqp, self.redis] + list(self) if s is not None]
        await stop_in_order(dict.fromkeys(s for s in own if s.parent is self), self.log)
        Service.stopService(self)
        for registration_handler in self._task_handlers.values():
            self.events.remove(registration_handler)
        self._task_handlers = {}
        if self._own_threadpool and self._threadpool is not None:
            self._threadpool.stop()
            self._threadpool = None
        self.state = "stopped"
        self.log.info("Worker {name} stopped", name=self.name)

    def _grace_expired(self) -> None:
        self._grace_call = None
        if self._running:
            self.log.warn(
                "Grace period over: cancelling {n} running task(s); they are requeued",
                n=len(self._running),
            )
        for context in list(self._running.values()):
            context.cancel("shutdown")

    def _install_second_signal(self) -> None:
        def second(signum: int, frame: Any) -> None:
            self.log.warn("Second signal: stopping now")
            self._reactor.callFromThread(self._expire_now)

        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(signum, second)
            except ValueError:  # not the main thread
                return

    def _expire_now(self) -> None:
        if self._grace_call is not None and self._grace_call.active():
            self._grace_call.cancel()
        self._grace_expired()

    # -- running tasks --------------------------------------------------------

    def _run_in_thread(
        self, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Deferred[Any]:
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self._reactor, self._threadpool, function, *args, **kwargs)

    def _raw_adapter(self, function: Callable[[bytes], Any]) -> Callable[[Any], Any]:
        import inspect

        if inspect.iscoroutinefunction(function):
            return lambda event: function(event.payload.body)
        return lambda event: self._run_in_thread(function, event.payload.body)

    async def _on_delivery(self, queue: str, delivery: Any) -> Any:
        from txmsg.amqp import Outcome

        if queue in self.raw_handlers:
            return await self._on_raw_delivery(queue, delivery)
        props = delivery.properties
        try:
            task = decode_task(delivery.body, props.content_type, props.message_id)
        except MalformedTask as e:
            self.stats.malformed += 1
            self.log.warn(
                "Dead-lettering a malformed message from {queue}: {reason}",
                queue=queue,
                reason=str(e),
            )
            await self._dead_letter(queue, delivery, "malformed", Failure(e))
            await self._reply_error(delivery, None, "MalformedTask", str(e))
            self.stats.record(queue, MALFORMED_TASK, "dead_lettered", "malformed")
            return Outcome.ACK
        spec = self.tasks.get(task.name)
        if spec is None:
            self.stats.unknown += 1
            message = "no task named {!r} on worker {}".format(task.name, self.name)
            self.log.warn("Dead-lettering task {id}: {message}", id=task.id, message=message)
            await self._dead_letter(queue, delivery, "unknown-task", Failure(LookupError(message)))
            await self._reply_error(delivery, task.id, "UnknownTask", message)
            self.stats.record(queue, UNKNOWN_TASK, "dead_lettered", "unknown-task")
            return Outcome.ACK
        bad_arguments = spec.check_arguments(task.args, task.kwargs)
        if bad_arguments is not None:
            self.stats.malformed += 1
            message = "bad arguments for task {!r}: {}".format(task.name, bad_arguments)
            self.log.warn("Dead-lettering task {id}: {message}", id=task.id, message=message)
            await self._dead_letter(queue, delivery, "bad-arguments", Failure(TypeError(message)))
            await self._reply_error(delivery, task.id, "TypeError", message)
            self.stats.record(queue, task.name, "dead_lettered", "bad-arguments")
            return Outcome.ACK
        attempt = int(delivery.headers.get(ATTEMPT_HEADER, 0)) + 1
        if spec.idempotent and not await self._claim(task):
            self.stats.duplicates += 1
            self.stats.record(queue, task.name, "duplicate")
            self.log.info(
                "Skipping task {id} ({name}): it already ran (idempotency key)",
                id=task.id,
                name=task.name,
            )
            return Outcome.ACK
        try:
            outcome = await self._run(queue, delivery, spec, task, attempt)
        except BaseException:
            if spec.idempotent:
                await self._release(task)
            raise
        if spec.idempotent and outcome is not None:
            await self._release(task)
        return Outcome.ACK

    async def _run(self, queue: str, delivery: Any, spec: Any, task: Task, attempt: int) -> Any:
        """
        Run one valid task and hand its outcome on; returns L{None} when it
        succeeded, else the kind of failure.
        """
        context = TaskContext(
            task=task,
            attempt=attempt,
            redelivered=delivery.redelivered,
            queue=queue,
            headers=dict(delivery.headers),
        )
        self._running[task.id] = context
        self.stats.started(task)
        try:
            result = await self.events.dispatch(spec.event_name, context, source="amqp:" + queue)
        finally:
            del self._running[task.id]
            self.stats.finished(task, queue)
        handler = self._task_handlers.get(task.name)
        outcomes = [o for o in result.outcomes if o.handler is handler]
        if not outcomes:  # unregistered while it was queued: treat as a failure
            outcome_failure: Failure | None = Failure(LookupError("task handler gone"))
            timed_out = False
            value = None
        else:
            outcome_failure, timed_out, value = (
                outcomes[0].failure,
                outcomes[0].timed_out,
                outcomes[0].value,
            )
            if value is _CANCELLED:
                from twisted.internet.defer import CancelledError

                outcome_failure = Failure(
                    CancelledError("cancelled by {}".format(context.cancelled_because))
                )
        if outcome_failure is None:
            self.stats.succeeded += 1
            await self._reply_ok(delivery, task.id, value)
            self.stats.record(queue, task.name, "succeeded")
            return None
        if context.cancelled_because == "shutdown":
            self.stats.requeued += 1
            self.stats.record(queue, task.name, "requeued")
            from txmsg.amqp import RetryLater

            raise RetryLater("shutting down")
        if context.cancelled_because is not None:
            self.stats.cancelled += 1
            await self._dead_letter(queue, delivery, "cancelled", outcome_failure, attempt)
            await self._reply_error(
                delivery, task.id, "TaskCancelled", "cancelled by " + context.cancelled_because
            )
            self.stats.record(queue, task.name, "dead_lettered", "cancelled")
            return "cancelled"
        if timed_out:
            self.stats.timed_out += 1
        self.stats.failed += 1
        policy = self._policy(spec.max_retries)
        if policy.should_retry(attempt):
            await self._retry(
                queue, delivery, policy, attempt, task, _one_line(outcome_failure, timed_out)
            )
            self.stats.record(queue, task.name, "retried")
            return "retried"
        self.log.failure(
            "Task {task} {id} failed on its last attempt ({attempt}); dead-lettering it",
            outcome_failure,
            task=task.name,
            id=task.id,
            attempt=attempt,
        )
        await self._dead_letter(queue, delivery, "failed", outcome_failure, attempt)
        error_type = (
            "TaskTimeout"
            if timed_out
            else (outcome_failure.type.__name__ if outcome_failure.type else "Error")
        )
        await self._reply_error(delivery, task.id, error_type, outcome_failure.getErrorMessage())
        self.stats.record(queue, task.name, "dead_lettered", "failed")
        return "dead-lettered"

    # -- idempotency keys -------------------------------------------------------

    def _idempotency_key(self, task: Task) -> str:
        return "txmsg:task-ran:" + task.id

    async def _claim(self, task: Task) -> bool:
        """
        Claim the task id in Redis (C{SET NX}); without Redis, always run.
        """
        if self.redis is None:
            return True
        claimed = await self.redis.handler.set(
            self._idempotency_key(task),
            self.name,
            expire=self.idempotency_ttl,
            only_if_not_exists=True,
        )
        return claimed is not None

    async def _release(self, task: Task) -> None:
        """
        Give the id back after a failure, so that the retry can run.
        """
        if self.redis is not None:
            try:
                await self.redis.handler.delete(self._idempotency_key(task))
            except Exception:
                self.log.failure("Releasing the idempotency key of {id} failed", id=task.id)

    async def _on_raw_delivery(self, queue: str, delivery: Any) -> Any:
        """
        A plain message for a raw handler: the function gets the body; when
        the message has C{reply_to}, what it returns (bytes, or anything
        else as its C{str}) is the reply, so plain RPC clients such as the
        seeds' C{rpc_client.py} work.  A failure is dead-lettered at once
        (plain messages carry no attempt count to retry by).
        """
        from txmsg.amqp import Outcome

        result = await self.events.dispatch("raw." + queue, delivery, source="amqp:" + queue)
        if result.failures:
            failure = result.failures[0].failure
            self.stats.failed += 1
            self.log.warn(
                "Raw handler for {queue} failed: {error}; dead-lettering the message",
                queue=queue,
                error=failure.getErrorMessage(),
            )
            await self._dead_letter(queue, delivery, "failed", failure)
            self.stats.record(queue, RAW_TASK, "dead_lettered", "failed")
            return Outcome.ACK
        self.stats.succeeded += 1
        value = result.values[0] if result.values else None
        if delivery.properties.reply_to and value is not None:
            body = value if isinstance(value, bytes) else str(value).encode("utf-8")
            await self._reply(delivery, body, content_type="text/plain")
        self.stats.record(queue, RAW_TASK, "succeeded")
        return Outcome.ACK

    # -- publishing outcomes --------------------------------------------------

    def _retry(
        self,
        queue: str,
        delivery: Any,
        policy: RetryPolicy,
        attempt: int,
        task: Task,
        error: str,
    ) -> Deferred[None]:
        step = policy.step_delay(attempt)
        target = retry_queue_name(queue, step)
        self.stats.retried += 1
        self.log.warn(
            "Task {task} {id} failed on attempt {attempt} ({error}); retrying in {delay}s "
            "via {target}",
            task=task.name,
            id=task.id,
            attempt=attempt,
            error=error,
            delay=step,
            target=target,
        )
        return self.amqp.publish(
            "",
            target,
            delivery.body,
            properties=delivery.properties,
            headers={ATTEMPT_HEADER: attempt},
            expiration=str(policy.expiration_ms(attempt)),
        )

    def _dead_letter(
        self, queue: str, delivery: Any, reason: str, failure: Failure, attempt: int | None = None
    ) -> Deferred[None]:
        self.stats.dead_lettered += 1
        headers = {
            REASON_HEADER: reason,
            ERROR_TYPE_HEADER: failure.type.__name__ if failure.type else "Error",
            ERROR_MESSAGE_HEADER: failure.getErrorMessage()[:1000],
            TRACEBACK_HEADER: _traceback_summary(failure),
            QUEUE_HEADER: queue,
            WORKER_HEADER: self.name,
            FAILED_AT_HEADER: int(time.time()),
        }
        if attempt is not None:
            headers[ATTEMPT_HEADER] = attempt
        return self.amqp.publish(
            "",
            dead_letter_queue_name(queue),
            delivery.body,
            properties=delivery.properties,
            headers=headers,
            expiration=None,
        )

    def _reply_ok(self, delivery: Any, task_id: str, value: Any) -> Deferred[None]:
        if not delivery.properties.reply_to:
            return succeed(None)
        try:
            body = encode_result(task_id, value)
        except (TypeError, ValueError) as e:
            body = encode_error(task_id, "UnserializableResult", str(e))
        return self._reply(delivery, body)

    def _reply_error(
        self, delivery: Any, task_id: str | None, error_type: str, message: str
    ) -> Deferred[None]:
        if not delivery.properties.reply_to:
            return succeed(None)
        return self._reply(delivery, encode_error(task_id or "", error_type, message))

    def _reply(
        self, delivery: Any, body: bytes, content_type: str = CONTENT_TYPE
    ) -> Deferred[None]:
        props = delivery.properties
        return self.amqp.replies().send(
            props.reply_to, body, content_type=content_type, correlation_id=props.correlation_id
        )

    # -- control ----------------------------------------------------------------

    @property
    def consumers(self) -> dict[str, Any]:
        """
        The active L{txmsg.amqp.Consumer} of each queue (none while paused
        or stopped): what health checks and metrics read.
        """
        return dict(self._consumers)

    def status(self) -> dict[str, Any]:
        """
        What the worker is doing: the C{status} control command's reply and
        the worker-registry entry.
        """
        now = self._reactor.seconds()
        return {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state": self.state,
            "queues": self.queues,
            "tasks": self.tasks.names(),
            "running": [
                {
                    "id": c.task.id,
                    "task": c.task.name,
                    "attempt": c.attempt,
                    "seconds": round(now - self.stats.started_at.get(c.task.id, now), 3),
                }
                for c in self._running.values()
            ],
            "counts": self.stats.counts(),
            "uptime": round(self.stats.uptime(), 3),
            "time": time.time(),
        }

    def _control_shutdown(self, command: Any) -> dict[str, Any]:
        self.log.info("Shutdown requested over the control channel")
        shutdown = self._on_shutdown or self.stopService
        self._reactor.callLater(0, shutdown)
        return {"stopping": True, "running": len(self._running)}

    def _control_stop_job(self, command: Any) -> dict[str, Any]:
        job_id = command.args.get("job_id")
        context = self._running.get(job_id)
        cancelled = context.cancel("stop-job") if context is not None else False
        self.log.info(
            "stop-job {id}: {result}", id=job_id, result="cancelled" if cancelled else "not running"
        )
        return {"job_id": job_id, "cancelled": cancelled}

    def _control_kill_horse(self, command: Any) -> dict[str, Any]:
        cancelled = [c.task.id for c in list(self._running.values()) if c.cancel("kill-horse")]
        self.log.info("kill-horse: cancelled {n} task(s)", n=len(cancelled))
        return {"cancelled": cancelled}

    def _control_pause(self, command: Any) -> dict[str, Any]:
        if self.state != "running":
            return {"state": self.state}
        self.state = "paused"
        consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            consumer.stop()
        self.log.info("Paused: consuming nothing until resumed")
        return {"state": self.state}

    def _control_resume(self, command: Any) -> dict[str, Any]:
        if self.state != "paused":
            return {"state": self.state}
        for queue in self.queues:
            self._start_consumer(queue)
        self.state = "running"
        self.log.info("Resumed")
        return {"state": self.state}

    # -- timers ------------------------------------------------------------------

    def _check_lag(self) -> None:
        lag = self.stats.tick(self._reactor.seconds(), 1.0)
        if lag > self.lag_warning:
            self.log.warn(
                "The reactor was {lag:.2f}s late: something blocks it (a blocking call in a "
                "task not declared blocking=True?)",
                lag=lag,
            )

    def _beat(self) -> Deferred[None]:
        from txmsg.worker.registry import register_worker

        d = maybeDeferred(
            register_worker, self.redis.handler, self.status(), ttl=self.heartbeat * 3
        )
        return d.addErrback(
            lambda f: self.log.warn("Worker heartbeat failed: {reason}", reason=one_line(f))
        )
