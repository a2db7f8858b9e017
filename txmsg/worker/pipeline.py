# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The path of one delivery through the worker:

    message -> headers and body checked -> task run on the event registry
            -> outcome -> decision (L{txmsg.worker.decisions})
            -> settlement on the broker (L{txmsg.worker.settlement})

L{DeliveryPipeline.handle} is the broker consumer's handler.  Whatever goes
wrong on the way ends in a decision: a failure of the task itself is
retried by its policy; anything else (a malformed body, bad headers, an
exception outside the task) dead-letters the message at once with the
reason, logged once, and the next message runs.
"""

from __future__ import annotations

import inspect
import random
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectError, ConnectionClosed, ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._eager import start_eagerly
from txmsg.amqp import NotConnectedError, PublishError
from txmsg.amqp.reply_to import reply_to_problem
from txmsg.events import EventRegistry
from txmsg.redis import RedisCommandTimeout, RedisNotRunning
from txmsg.redis._common import is_redis_unavailable
from txmsg.worker._stats import MALFORMED_TASK, RAW_TASK, UNKNOWN_TASK, WorkerStats
from txmsg.worker.brokers.interfaces import IncomingMessage
from txmsg.worker.decisions import (
    BAD_ARGUMENTS,
    BAD_HEADERS,
    Ack,
    Broken,
    Cancelled,
    DeadLetter,
    Decision,
    Delay,
    DeliveryFacts,
    Duplicate,
    Failed,
    Outcome,
    Rejected,
    Reply,
    Requeue,
    Retry,
    Succeeded,
    admit,
    decide,
    hand_back,
)
from txmsg.worker.decisions import (
    UNKNOWN_TASK as UNKNOWN_TASK_REASON,
)
from txmsg.worker.envelope import MalformedTask, Task, decode_task
from txmsg.worker.headers import BadHeaders, read_headers
from txmsg.worker.idempotency import IdempotencyKeys
from txmsg.worker.limits import Lease, TaskLimits, check_limits_redis
from txmsg.worker.report import DeliveryReport
from txmsg.worker.result_recorder import ResultRecorder, revoked_decision
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.retry_rules import Retry as RetryTask
from txmsg.worker.settlement import Settlement
from txmsg.worker.task_times import check_times
from txmsg.worker.tasks import _CANCELLED, TaskCatalog, TaskContext, TaskSpec

__all__ = ["TRANSIENT_ERRORS", "DeliveryPipeline"]

#: Errors outside a task that a later try may not meet: a server went away.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    NotConnectedError,
    PublishError,
    RedisNotRunning,
    RedisCommandTimeout,
)


def is_transient(failure: Failure) -> bool:
    """
    Whether an error outside a task may go away on a later try: a server
    went away (Redis: L{is_redis_unavailable}).
    """
    return failure.check(*TRANSIENT_ERRORS) is not None or is_redis_unavailable(failure)


def traceback_summary(failure: Failure, limit: int = 2000) -> str:
    """
    The last 5 frames (C{file:line in function}) and the exception, at most
    C{limit} characters.
    """
    text = "".join(traceback.format_exception_only(failure.type, failure.value)).strip()
    lines = ["{}:{} in {}".format(f[1], f[2], f[0]) for f in failure.frames[-5:]]
    return "\n".join(lines + [text])[-limit:]


def _type_name(failure: Failure) -> str:
    return failure.type.__name__ if failure.type else "Error"


class DeliveryPipeline:
    """
    Run deliveries of task (and raw) queues and settle them.

    @ivar running: the running tasks, by task id.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(
        self,
        *,
        tasks: TaskCatalog,
        events: EventRegistry,
        settlement: Settlement,
        stats: WorkerStats,
        retry: RetryPolicy,
        idempotency: IdempotencyKeys,
        raw_handlers: Mapping[str, Callable[[bytes], Any]],
        worker_name: str,
        source: str = "amqp",
        jitter: Callable[[], float] = random.random,
        results: ResultRecorder | None = None,
        workflows: Any = None,
    ) -> None:
        self.tasks = tasks
        self.events = events
        self.settlement = settlement
        self.stats = stats
        self.retry = retry
        self.idempotency = idempotency
        self.raw_handlers = dict(raw_handlers)
        self.worker_name = worker_name
        self.source = source
        self.jitter = jitter
        #: Records task states when the worker has a result store.
        self.results = results
        #: Carries workflows on (L{txmsg.worker.workflow_steps}), or L{None}.
        self.workflows = workflows
        check_limits_redis(tasks, idempotency.redis)
        #: Rate and concurrency limits (kept in the same Redis).
        self.limits = TaskLimits(idempotency.redis, worker_name, settlement.clock, jitter)
        self.running: dict[str, TaskContext] = {}
        self.report = DeliveryReport(stats)
        self._task_handlers: dict[str, Any] = {}
        self._raw_adapters: dict[str, Any] = {}

    def policy(self, max_retries: int | None, spec: TaskSpec | None = None) -> RetryPolicy:
        """
        The retry policy of a task with this C{max_retries} (L{None}: the
        worker's) and C{spec}'s backoff, if it has one.
        """
        retries = self.retry.max_retries if max_retries is None else max_retries
        if spec is not None and spec.backoff is not None:
            return spec.backoff.policy(retries)
        if retries == self.retry.max_retries:
            return self.retry
        return replace(self.retry, max_retries=retries)

    def retry_delays(self) -> list[float]:
        """
        Every delay any task can retry after (the first step always, as
        failed settlements wait that long).
        """
        delays = set(self.retry.steps()) | {self.retry.step_delay(1)}
        for name in self.tasks.names():
            spec = self.tasks.get(name)
            if spec is not None and (spec.max_retries is not None or spec.backoff is not None):
                policy = self.policy(spec.max_retries, spec)
                delays.update(policy.steps() or [policy.step_delay(1)])
        return sorted(delays)

    # -- installing ------------------------------------------------------------

    def install(self, run_in_thread: Callable[..., Deferred[Any]]) -> None:
        """
        Register the tasks and raw handlers on the event registry.
        """
        idempotent = [n for n in self.tasks.names() if self.tasks.get(n).idempotent]  # type: ignore[union-attr]
        if idempotent and self.idempotency.redis is None:
            self.log.warn(
                "Tasks {tasks} are declared idempotent, but this worker has no Redis "
                "(--redis): they may run more than once per id",
                tasks=", ".join(idempotent),
            )
        self._task_handlers = self.tasks.install(self.events, run_in_thread)
        for queue, function in self.raw_handlers.items():
            if inspect.iscoroutinefunction(function):
                adapter = _coroutine_adapter(function)
            else:
                adapter = _thread_adapter(function, run_in_thread)
            self._raw_adapters[queue] = adapter
            self.events.add("raw." + queue, adapter)

    def uninstall(self) -> None:
        """
        Remove what L{install} registered.
        """
        for handler in self._task_handlers.values():
            self.events.remove(handler)
        for adapter in self._raw_adapters.values():
            self.events.remove(adapter)
        self._task_handlers, self._raw_adapters = {}, {}

    # -- one delivery ------------------------------------------------------------

    def handle(self, message: IncomingMessage) -> Deferred[Any]:
        """
        Handle one delivery and settle it; never fails.

        @return: a Deferred of what the broker's consumer applies to the
            delivery; it has already fired when nothing had to wait (a task
            on the reactor that returned a value, and its plain ack).
        """
        return start_eagerly(self._handle(message))

    async def _handle(self, message: IncomingMessage) -> Any:
        label, policy = MALFORMED_TASK, self.retry
        failure: Failure | None = None
        problem = reply_to_problem(message.reply_to) if message.reply_to else None
        # A bad reply_to is never replied to: the broker could close the connection.
        has_reply_to = problem is None and bool(message.reply_to)
        try:
            if problem is not None:
                facts = DeliveryFacts(message.queue)
                outcome: Outcome | Decision = Rejected(
                    BAD_HEADERS, "BadHeaders", problem, "BadHeaders"
                )
                if message.queue in self.raw_handlers:
                    label = RAW_TASK
            elif message.queue in self.raw_handlers:
                label = RAW_TASK
                facts = DeliveryFacts(message.queue, has_reply_to=has_reply_to)
                decision = await self._raw(message, facts)
                return await self.settlement.settle(message, facts, decision)
            else:
                facts, label, policy, outcome, failure = await self._task(message, has_reply_to)
        except Exception:
            # Before the task was read: decided on what the delivery says
            # (no task id, no attempts).
            facts = DeliveryFacts(message.queue, has_reply_to=has_reply_to)
            failure = Failure()
            outcome = self._broken(message, failure, retry=label != RAW_TASK)
        if isinstance(outcome, (Ack, Reply, Retry, DeadLetter, Requeue, Delay)):
            decision = outcome
        else:
            decision = decide(facts, outcome, policy, self.jitter())
        if self.results is not None and facts.task_id is not None:
            name = None if label.startswith("<") else label
            decision = await self.results.settling(facts, name, outcome, decision)
        if self.workflows is not None and facts.task_id is not None:
            decision = await self.workflows.settling(message, facts, outcome, decision)
        settled = await self.settlement.settle(message, facts, decision)
        # Counted once settled (as the consumer acks it): what /metrics shows
        # is already done.
        self.report.report(facts, label, outcome, decision, failure)
        return settled

    def _broken(self, message: IncomingMessage, failure: Failure, retry: bool = True) -> Broken:
        """
        The outcome of a failure outside the task (logged): retried later
        when transient (a server went away) and C{retry}, else
        dead-lettered.
        """
        transient = retry and is_transient(failure)
        if transient:
            self.log.warn(
                "Handling a delivery from {queue} failed ({error}); retrying it later",
                queue=message.queue,
                error=failure.getErrorMessage() or _type_name(failure),
            )
        else:
            self.log.failure(
                "Handling a delivery from {queue} failed outside its task; dead-lettering it",
                failure,
                queue=message.queue,
            )
        return Broken(
            _type_name(failure),
            failure.getErrorMessage(),
            traceback_summary(failure),
            transient=transient,
        )

    async def give_back(self, message: IncomingMessage) -> Any:
        """
        Hand back a delivery that arrived after its consumer stopped
        (shutdown, C{pause}): its task never started, so it goes back to
        the broker without counting as a run (L{hand_back}).  One with bad
        headers is only nacked: its next delivery dead-letters it.
        """
        facts = DeliveryFacts(message.queue)
        try:
            headers = read_headers(message.headers)
        except BadHeaders:
            return await self.settlement.settle(message, facts, Requeue())
        facts = replace(
            facts,
            attempts=headers.attempts + (headers.delivery_count or 0),
            redelivered=message.redelivered,
            counted=headers.delivery_count is not None,
        )
        return await self.settlement.settle(message, facts, hand_back(facts))

    async def _task(
        self, message: IncomingMessage, has_reply_to: bool
    ) -> tuple[DeliveryFacts, str, RetryPolicy, Outcome | Decision, Failure | None]:
        try:
            task = decode_task(message.body, message.content_type, message.message_id)
        except MalformedTask as e:
            kind = type(e).__name__
            rejected = Rejected(e.reason, kind, str(e), kind)
            facts = DeliveryFacts(message.queue, has_reply_to=has_reply_to)
            return facts, MALFORMED_TASK, self.retry, rejected, None
        try:
            headers = read_headers(message.headers)
        except BadHeaders as e:
            rejected = Rejected(BAD_HEADERS, "BadHeaders", str(e), "BadHeaders")
            facts = DeliveryFacts(message.queue, task_id=task.id, has_reply_to=has_reply_to)
            return facts, MALFORMED_TASK, self.retry, rejected, None
        facts = DeliveryFacts(
            queue=message.queue,
            task_id=task.id,
            attempts=headers.attempts + (headers.delivery_count or 0),
            redelivered=message.redelivered,
            counted=headers.delivery_count is not None,
            has_reply_to=has_reply_to,
        )
        try:
            if task.version > 1:  # eta, expires: checked before anything else
                now = self.settlement.clock.seconds()
                timing = check_times(task, now, facts)
                if timing is not None:
                    return facts, task.name, self.retry, timing, None
            spec = self.tasks.get(task.name)
            if spec is None:
                text = "no task named {!r} on worker {}".format(task.name, self.worker_name)
                rejected = Rejected(UNKNOWN_TASK_REASON, "LookupError", text, "UnknownTask")
                return facts, UNKNOWN_TASK, self.retry, rejected, None
            policy = self.policy(spec.max_retries, spec)
            bad_arguments = spec.check_arguments(task.args, task.kwargs)
            if bad_arguments is not None:
                text = "bad arguments for task {!r}: {}".format(task.name, bad_arguments)
                return (
                    facts,
                    task.name,
                    policy,
                    Rejected(BAD_ARGUMENTS, "TypeError", text, "TypeError"),
                    None,
                )
            if self.results is not None and self.results.revoked(task.id):
                return facts, task.name, policy, revoked_decision(facts), None
            once = spec.idempotent or headers.once
            if once and not await self.idempotency.claim(task.id):
                return facts, task.name, policy, Duplicate(), None
            admitted = admit(facts, policy.max_retries)
            if admitted is not None:
                if once:
                    await self.idempotency.release(task.id)
                return facts, task.name, policy, admitted, None
            redelivered = message.redelivered or headers.redelivered
            lease: Delay | Lease | None = None
            try:
                if spec.limited:
                    lease = await self.limits.take(spec, task.id, facts)
                    if isinstance(lease, Delay):
                        if once:
                            await self.idempotency.release(task.id)
                        return facts, task.name, policy, lease, None
                outcome, failure = await self._run(message, facts, spec, task, redelivered)
            except BaseException:
                if once:
                    await self.idempotency.release(task.id)
                raise
            finally:
                if isinstance(lease, Lease):
                    await lease.release()
            if once and not isinstance(outcome, Succeeded):
                await self.idempotency.release(task.id)
            return facts, task.name, policy, outcome, failure
        except Exception:
            # Outside the task, once it was read (Redis gone during an
            # idempotency claim, say): decided with its id and attempts, so
            # that a transient error counts as a run and the delivery cap
            # holds, and the result store hears of it.
            failure = Failure()
            spec = self.tasks.get(task.name)
            label = task.name if spec is not None else UNKNOWN_TASK
            policy = self.retry if spec is None else self.policy(spec.max_retries, spec)
            return facts, label, policy, self._broken(message, failure), failure

    async def _run(
        self,
        message: IncomingMessage,
        facts: DeliveryFacts,
        spec: TaskSpec,
        task: Task,
        redelivered: bool,
    ) -> tuple[Outcome, Failure | None]:
        context = TaskContext(
            task=task,
            attempt=facts.attempt,
            redelivered=redelivered,
            queue=message.queue,
            headers=dict(message.headers),
        )
        self.running[task.id] = context
        self.stats.started(task)
        if self.results is not None:
            self.results.started(context)
        try:
            # In this stack when the registry is idle: a task on the reactor
            # runs as its message arrives, not a reactor turn later.
            result = await self.events.dispatch_now(
                spec.event_name, context, source=self.source + ":" + message.queue
            )
        finally:
            del self.running[task.id]
            self.stats.finished(task, message.queue)
        found = result.outcome_of(self._task_handlers.get(task.name))
        if found is None:  # unregistered while it was queued: a failure of the task
            return Failed("LookupError", "task handler gone"), None
        failure, timed_out, value = found.failure, found.timed_out, found.value
        if value is _CANCELLED or (failure is not None and context.cancelled_because):
            because = context.cancelled_because or "shutdown"
            error_type = "CancelledError" if failure is None else _type_name(failure)
            if failure is None:
                failure = Failure(CancelledError("cancelled by " + because))
            cancelled = Cancelled(
                because, error_type, traceback_summary(failure), started=context.started
            )
            return cancelled, failure
        if failure is None:
            return Succeeded(value), None
        return (
            Failed(
                _type_name(failure),
                failure.getErrorMessage(),
                traceback_summary(failure),
                timed_out=timed_out,
                retry=timed_out or spec.rules.retries(failure.value or Exception()),
                delay=getattr(failure.value, "delay", None) if failure.check(RetryTask) else None,
            ),
            failure,
        )

    async def _raw(self, message: IncomingMessage, facts: DeliveryFacts) -> Decision:
        """
        A plain message for a raw handler: the function gets the body; what
        it returns is the reply when the message has C{reply_to}.  A failure
        is dead-lettered at once (plain messages carry no attempt count).
        """
        queue = message.queue
        result = await self.events.dispatch(
            "raw." + queue, message, source=self.source + ":" + queue
        )
        if result.failures:
            failure = result.failures[0].failure
            assert failure is not None  # DispatchResult.failures lists only those
            self.stats.failed += 1
            self.stats.dead_lettered += 1
            self.log.warn(
                "Raw handler for {queue} failed: {error}; dead-lettering the message",
                queue=queue,
                error=failure.getErrorMessage(),
            )
            self.stats.record(queue, RAW_TASK, "dead_lettered", "failed")
            return DeadLetter(
                "failed", _type_name(failure), failure.getErrorMessage(), traceback_summary(failure)
            )
        self.stats.succeeded += 1
        self.stats.record(queue, RAW_TASK, "succeeded")
        value = result.values[0] if result.values else None
        if message.reply_to and value is not None:
            body = value if isinstance(value, bytes) else str(value).encode("utf-8")
            return Reply(body, content_type="text/plain")
        return Ack()


def _coroutine_adapter(function: Callable[[bytes], Any]) -> Callable[[Any], Any]:
    return lambda event: function(event.payload.body)


def _thread_adapter(
    function: Callable[[bytes], Any], run_in_thread: Callable[..., Deferred[Any]]
) -> Callable[[Any], Any]:
    return lambda event: run_in_thread(function, event.payload.body)
