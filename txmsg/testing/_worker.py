# -*- test-case-name: txmsg.test.test_testing -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{WorkerHarness}: the real L{txmsg.worker.service.WorkerService} on a
L{MemoryBroker} and a clock, with helpers to submit tasks, advance time and
inspect results, retries, dead letters and logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.python.failure import Failure

from txmsg.amqp import Queue
from txmsg.amqp.delay_levels import TICK, decode
from txmsg.events import EventRegistry
from txmsg.testing._amqp_broker import MemoryBroker
from txmsg.testing._events import SyncThreadPool
from txmsg.worker.client import TaskClient, TaskFailed
from txmsg.worker.envelope import (
    CONTENT_TYPE,
    Task,
    decode_result,
    encode_task,
    new_task_id,
)
from txmsg.worker.results import RedisResultStore
from txmsg.worker.retry import ATTEMPT_HEADER, RetryPolicy, dead_letter_queue_name
from txmsg.worker.service import (
    ERROR_MESSAGE_HEADER,
    ERROR_TYPE_HEADER,
    REASON_HEADER,
    WorkerService,
)
from txmsg.worker.states import TaskState
from txmsg.worker.tasks import TaskCatalog, load_tasks

__all__ = ["DeadLetterRecord", "TaskOutcome", "WorkerHarness"]

REPLY_QUEUE = "txmsg-harness.replies"


def ensure_thread_calls(clock: Clock) -> Clock:
    """Give a C{Clock} C{callFromThread} (a call on the next turn) if it lacks one."""
    if not hasattr(clock, "callFromThread"):
        cast(Any, clock).callFromThread = lambda f, *a, **kw: clock.callLater(0, f, *a, **kw)
    return clock


@dataclass(frozen=True)
class TaskOutcome:
    """
    A task's reply, as the worker sent it.

    @ivar status: C{"ok"} or C{"error"}.
    """

    id: str
    status: str
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the task succeeded."""
        return self.status == "ok"


@dataclass(frozen=True)
class DeadLetterRecord:
    """A message in a C{<queue>.dead} queue, with the worker's headers."""

    task: str | None
    id: str | None
    reason: str | None
    error_type: str | None
    error_message: str | None
    attempts: int | None
    headers: dict
    body: bytes


class WorkerHarness:
    """
    Run a task module in the real worker, on a L{MemoryBroker} and a clock.

        h = WorkerHarness("myapp.tasks")
        task_id = h.submit("add", 2, 3)
        assert h.result(task_id) == 5

    Retries wait in the broker's delay queues exactly as with
    C{txmsg-worker} (jitter is 0 unless a C{retry} policy says otherwise):
    C{h.advance(seconds)} moves time on.  Log events of the worker and the
    event registry are captured in C{h.logs} (and not sent to the global
    log, so intended task failures do not fail a trial test).

    @ivar worker: the L{txmsg.worker.service.WorkerService}.
    @ivar broker: the L{MemoryBroker}.
    @ivar clock: the clock.
    @ivar events: the worker's L{txmsg.events.EventRegistry}.
    @ivar outcomes: task id -> L{TaskOutcome}, for tasks sent by L{submit}.
    @ivar runs: C{(task id, task name, attempt)} for every run.
    """

    def __init__(
        self,
        tasks: TaskCatalog | ModuleType | str,
        clock: Clock | None = None,
        *,
        queues: tuple = ("tasks",),
        retry: RetryPolicy | None = None,
        broker: MemoryBroker | None = None,
        name: str = "harness",
        prefetch: int = 1,
        grace: float = 30.0,
        redis: Any = None,
        raw_handlers: dict | None = None,
        start: bool = True,
        results: Any = None,
        max_priority: int | None = None,
    ) -> None:
        """
        @param tasks: a L{TaskCatalog}, a task module, or its dotted name.
        @param clock: a C{Clock} (default: a new one, or the broker's).
        @param retry: the worker's L{RetryPolicy} (default: the worker's
            defaults without jitter).
        @param redis: a (memory) L{txmsg.redis.RedisService} for the control
            channel, or L{None}.
        @param start: start the worker now.
        @param results: a (memory) L{txmsg.redis.RedisService} to store task
            states in (L{task_state}, L{revoke}), or L{None}.
        @param max_priority: the worker's C{--max-priority}.

        C{h.client} is a L{txmsg.worker.client.TaskClient} on the same
        broker and clock: C{tasks.bind(h.client)} makes task handles send
        through it (C{add.send(2, 3)}, C{add.s(2, 3).send(countdown=5)}).
        """
        if broker is None:
            if clock is None:
                clock = Clock()
            broker = MemoryBroker(clock)
        self.broker = broker
        self.clock = ensure_thread_calls(clock if clock is not None else broker.clock)
        self.registry = _registry(tasks)
        self.logs: list[dict] = []
        self.outcomes: dict[str, TaskOutcome] = {}
        self.runs: list[tuple] = []
        self.queues = list(queues)
        self.events = EventRegistry(reactor=self.clock)
        self.events.log = Logger(
            namespace="txmsg.events", observer=cast(ILogObserver, self.logs.append)
        )
        self.worker = WorkerService(
            self.registry,
            queues=self.queues,
            raw_handlers=raw_handlers,
            amqp=broker.connection(),
            events=self.events,
            reactor=self.clock,
            threadpool=SyncThreadPool(),
            name=name,
            prefetch=prefetch,
            grace=grace,
            retry=retry or RetryPolicy(jitter=0.0),
            redis=redis,
            results=None if results is None else RedisResultStore(results, clock=self.clock),
            max_priority=max_priority,
        )
        worker_log = Logger(namespace="txmsg.worker", observer=cast(ILogObserver, self.logs.append))
        w = self.worker
        parts: list[Any] = [
            w,
            w.pipeline,
            w.pipeline.limits,
            w.pipeline.report,
            w.pipeline.settlement,
            w.control,
            w.timers,
            w.idempotency,
            w.broker,
            w.grace_period,
        ] + ([w.pipeline.results] if w.pipeline.results is not None else [])
        if w.pipeline.workflows is not None:
            parts.append(w.pipeline.workflows)
        for part in parts:
            part.log = worker_log
        for spec_name in self.registry.names():
            spec = self.registry.get(spec_name)
            assert spec is not None
            self.events.add(spec.event_name, self._observe)
        self.connection = broker.connection()
        self.client = TaskClient(self.connection, queue=self.queues[0])

        self._replies = self.connection.consume(
            Queue(REPLY_QUEUE, durable=False, exclusive=True, auto_delete=False), self._reply
        )
        if start:
            self.start()

    def _observe(self, event: Any) -> None:
        context = event.payload
        self.runs.append((context.task.id, context.task.name, context.attempt))

    def _reply(self, delivery: Any) -> None:
        r = decode_result(delivery.body)
        task_id = r.id or delivery.correlation_id
        self.outcomes[task_id] = TaskOutcome(
            task_id, "ok" if r.ok else "error", r.result, r.error_type, r.error_message
        )

    # -- running ------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker and the harness's client connection."""
        self.worker.startService()
        self.connection.startService()
        self.advance(0)

    def stop(self) -> Deferred:
        """Stop the worker (draining, as on SIGTERM) and the client."""
        d = self.worker.stopService()
        d.addCallback(lambda _: self.connection.stopService())
        self.advance(0)
        self.advance(0)
        return d

    def advance(self, seconds: float = 0.0) -> None:
        """Move the clock on by C{seconds}, running everything that comes due."""
        self.clock.advance(seconds)

    def run_until_idle(self, limit: float = 3600.0) -> float:
        """
        Advance from timer to timer until no task is queued, waiting in a
        retry queue or running (at most C{limit} seconds).

        @return: the seconds advanced.
        """
        start = self.clock.seconds()
        self.advance(0)
        while self._busy() and self.clock.seconds() - start < limit:
            calls = [c.getTime() for c in self.clock.getDelayedCalls()]
            later = [t for t in calls if t > self.clock.seconds()]
            if not later:
                break
            self.advance(min(later) - self.clock.seconds())
        return self.clock.seconds() - start

    def _busy(self) -> bool:
        if self.worker.running_tasks:
            return True
        # Work queues and the delay levels (where retries and delays wait).
        names = list(self.queues) + self.broker.queue_names("txmsg.delay.*")
        return any(self.broker.message_count(n) or self.broker.unacked_count(n) for n in names)

    # -- submitting ----------------------------------------------------------------

    def submit(
        self,
        task: str,
        *args: Any,
        queue: str | None = None,
        task_id: str | None = None,
        **kwargs: Any,
    ) -> str:
        """
        Send task C{task(*args, **kwargs)} (with a reply address, so its
        outcome lands in L{outcomes}) and run what is due now.

        @return: the task id.
        """
        message = Task(task, tuple(args), dict(kwargs), task_id or new_task_id())
        self.connection.publish(
            "",
            queue or self.queues[0],
            encode_task(message),
            content_type=CONTENT_TYPE,
            message_id=message.id,
            reply_to=REPLY_QUEUE,
            correlation_id=message.id,
        )
        self.advance(0)
        return message.id

    def call(self, task: str, *args: Any, **kwargs: Any) -> Deferred:
        """Submit through the real L{txmsg.worker.client.TaskClient} with C{wait=True}."""
        d = self.client.submit(task, args, kwargs, wait=True)
        self.advance(0)
        return d

    # -- inspecting -----------------------------------------------------------------

    def outcome(self, task_id: str) -> TaskOutcome | None:
        """The reply for C{task_id} so far, or L{None}."""
        return self.outcomes.get(task_id)

    def result(self, task_id: str) -> Any:
        """
        The result of a finished task.

        @raise txmsg.worker.client.TaskFailed: when it failed (dead-lettered).
        @raise LookupError: when it has not finished (yet).
        """
        o = self.outcomes.get(task_id)
        if o is None:
            raise LookupError(f"task {task_id} has no outcome yet")
        if not o.ok:
            raise TaskFailed(task_id, o.error_type or "Error", o.error_message or "")
        return o.result

    def attempts(self, task_id: str) -> int:
        """How many times task C{task_id} ran."""
        return sum(1 for r in self.runs if r[0] == task_id)

    def retries(self, task_id: str | None = None) -> list[dict]:
        """
        Every delayed retry the worker scheduled: C{{"id", "attempt",
        "queue", "expiration_ms"}} (the work queue it goes back to, and its
        wait in milliseconds, rounded up to the delay tick), oldest first.
        """
        out = []
        for m in self.broker.published:
            if not m.exchange.startswith("txmsg.delay."):
                continue
            try:
                ticks, queue = decode(m.routing_key)
            except ValueError:
                continue
            if ATTEMPT_HEADER not in m.headers:
                continue
            tid = m.properties.message_id
            if task_id is None or tid == task_id:
                out.append(
                    {
                        "id": tid,
                        "attempt": m.headers.get(ATTEMPT_HEADER),
                        "queue": queue,
                        "expiration_ms": int(ticks * TICK * 1000),
                    }
                )
        return out

    def dead_letters(self, queue: str | None = None) -> list[DeadLetterRecord]:
        """The messages now in C{<queue>.dead} (default: the first queue)."""
        out = []
        for m in self.broker.messages(dead_letter_queue_name(queue or self.queues[0])):
            try:
                body = json.loads(m.body)
            except (ValueError, RecursionError):
                body = {}
            if not isinstance(body, dict):
                body = {}
            h = m.headers
            out.append(
                DeadLetterRecord(
                    body.get("task"),
                    body.get("id") or m.properties.message_id,
                    h.get(REASON_HEADER),
                    h.get(ERROR_TYPE_HEADER),
                    h.get(ERROR_MESSAGE_HEADER),
                    h.get(ATTEMPT_HEADER),
                    h,
                    m.body,
                )
            )
        return out

    def _settled(self, d: Deferred) -> Any:
        self.advance(0)
        box: list[Any] = []
        d.addBoth(box.append)
        if not box:
            raise LookupError("the result store did not answer")
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]

    def task_state(self, task_id: str) -> TaskState | None:
        """The stored state of C{task_id} (needs C{results=})."""
        return cast(TaskState | None, self._settled(self._store().status(task_id)))

    def revoke(self, task_id: str) -> None:
        """Revoke C{task_id} as C{txmsg revoke} does (needs C{results=})."""
        self._settled(self._store().revoke(task_id))
        self.advance(0)

    def _store(self) -> RedisResultStore:
        store = self.worker.results
        if store is None:
            raise LookupError("this harness has no result store: pass results=")
        return store

    def log_messages(self) -> list[str]:
        """The captured log events, formatted."""
        return [formatEvent(e) for e in self.logs]


def _registry(tasks: Any) -> TaskCatalog:
    if isinstance(tasks, TaskCatalog):
        return tasks
    if isinstance(tasks, ModuleType):
        tasks = tasks.__name__
    return load_tasks(tasks)
