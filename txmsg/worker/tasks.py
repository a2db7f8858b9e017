# -*- test-case-name: txmsg.test.test_worker_tasks -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Declaring tasks: a L{TaskCatalog} of named task functions.

A task module declares its tasks on a catalog::

    from txmsg.worker import TaskCatalog

    tasks = TaskCatalog()

    @tasks.task
    def add(x, y):
        return x + y

    @tasks.task(name="fib", blocking=True, timeout=30, max_retries=5)
    def fibonacci(n):
        ...

    @tasks.task
    async def fetch(url, *, context):   # context: the running TaskContext
        ...

and C{twistd -n txmsg-worker --tasks mypkg.tasks} runs them.  The worker
installs every task on its L{txmsg.events.EventRegistry} as a handler of the
event C{task.<name>}: a task is dispatched through the registry like any other
event, so other handlers may observe C{task.*} too.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, overload

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    ensureDeferred,
    fail,
    succeed,
)
from twisted.python.failure import Failure

from txmsg._loading import load_named
from txmsg.events import EventRegistry
from txmsg.redis.limits import Rate
from txmsg.worker.envelope import Task
from txmsg.worker.handles import Declare, TaskHandle
from txmsg.worker.limits import limit_options
from txmsg.worker.retry_rules import Backoff, RetryRules

__all__ = [
    "TASK_EVENT_PREFIX",
    "TaskContext",
    "TaskCatalog",
    "TaskRegistry",
    "TaskSpec",
    "load_tasks",
]

#: Tasks are dispatched as events named C{task.<name>}.
TASK_EVENT_PREFIX = "task."

#: The outcome value of a task the worker cancelled on purpose (control
#: command or end of the shutdown grace period): not a handler failure, so the
#: event registry does not log it as one.
_CANCELLED = object()

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class TaskSpec:
    """
    One declared task.

    @ivar name: the name tasks are submitted under.
    @ivar function: the function; it may return a value, a Deferred or a
        coroutine.
    @ivar blocking: run it in the worker's thread pool, never on the reactor.
    @ivar timeout: seconds before the task is cancelled and counted as timed
        out (then retried like a failure); L{None} for no limit.
    @ivar max_retries: retries after a failure; L{None} for the worker's
        C{--max-retries}.
    @ivar wants_context: whether the function takes a C{context} keyword
        argument (the running L{TaskContext}).
    @ivar idempotent: run at most once per task id, even when the message is
        delivered twice (needs the worker's Redis: a C{SET NX} key per id).
    @ivar rules: which exceptions are retried (L{RetryRules}).
    @ivar backoff: the waits between retries (L{Backoff}); L{None}: the
        worker's C{--retry-delay}/C{--retry-max-delay}.
    @ivar rate_limit: starts per period across all workers, or L{None}.
    @ivar max_concurrency: runs at once across all workers, or L{None}.
    @ivar concurrency_lease: seconds a dead worker's slot stays taken.
    """

    name: str
    function: Callable[..., Any]
    blocking: bool = False
    timeout: float | None = None
    max_retries: int | None = None
    wants_context: bool = False
    idempotent: bool = False
    rules: RetryRules = RetryRules()
    backoff: Backoff | None = None
    rate_limit: Rate | None = None
    max_concurrency: int | None = None
    concurrency_lease: float = 30.0

    @property
    def limited(self) -> bool:
        """
        Whether the task has a rate or concurrency limit (L{txmsg.worker.limits}).
        """
        return self.rate_limit is not None or self.max_concurrency is not None

    @property
    def event_name(self) -> str:
        """
        The event this task is dispatched as.
        """
        return TASK_EVENT_PREFIX + self.name

    def check_arguments(self, args: tuple[Any, ...], kwargs: Any) -> str | None:
        """
        Whether the function accepts these arguments, before running it: a
        call that cannot bind would fail on every retry.

        @return: L{None} when they fit, else the reason.
        """
        try:
            return _cached_bind_problem(self.function, len(args), tuple(kwargs), self.wants_context)
        except TypeError:  # an unhashable callable
            return _bind_problem(self.function, len(args), tuple(kwargs), self.wants_context)


def _bind_problem(
    function: Callable[..., Any], nargs: int, names: tuple[str, ...], wants_context: bool
) -> str | None:
    # Whether a call binds depends only on how many positional arguments and
    # which keyword names it has, so the answer is cached per shape:
    # inspect.signature() and bind() cost more than a no-op task.
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    extra = {"context": None} if wants_context else {}
    try:
        signature.bind(*range(nargs), **dict.fromkeys(names), **extra)
    except TypeError as e:
        return str(e)
    return None


_cached_bind_problem = functools.lru_cache(maxsize=4096)(_bind_problem)


@dataclass
class TaskContext:
    """
    One running task, as its function and the worker see it.

    @ivar task: the L{Task} (name, args, kwargs, id).
    @ivar attempt: 1 on the first run, 2 on the first retry, ...
    @ivar redelivered: whether the broker delivered this message before
        (the task may already have run: make tasks idempotent).
    @ivar queue: the queue it came from.
    @ivar headers: the message headers.
    @ivar cancelled_because: why the task was cancelled (C{"stop-job"},
        C{"kill-horse"}, C{"shutdown"}), or L{None}.
    @ivar started: whether the task's function was called.  A blocking
        task waits for a free thread of the pool first; cancelled before
        that, it never runs (and, at shutdown, it is handed back to the
        broker without counting as a run).
    """

    task: Task
    attempt: int = 1
    redelivered: bool = False
    queue: str = ""
    headers: dict[str, Any] = field(default_factory=dict)
    cancelled_because: str | None = None
    started: bool = False
    _running: Deferred[Any] | None = field(default=None, repr=False)
    # Taken by the pool thread that starts the task and by cancel().
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def cancel(self, reason: str) -> bool:
        """
        Cancel the task: one that has not started yet never will; a running
        one has its Deferred cancelled (a task in a thread runs on, but its
        result is discarded).

        @return: whether there was something to cancel.
        """
        if self._running is not None and self._running.called:
            return False
        with self._lock:
            if self.cancelled_because is not None:
                return False
            self.cancelled_because = reason
        if self._running is not None:
            self._running.cancel()
        return True

    def begin(self) -> bool:
        """
        Called (in the task's thread, or on the reactor) just before the
        task's function: mark it started, unless it was cancelled first.

        @return: whether the function may run.
        """
        with self._lock:
            if self.cancelled_because is not None:
                return False
            self.started = True
            return True


class _TaskHandler:
    """
    The event handler that runs one task: called with the L{Event} whose
    payload is the L{TaskContext}.  The worker logs task failures itself,
    with the attempt and what happens next, so the registry does not.
    """

    log_failures = False

    def __init__(self, spec: TaskSpec, run_in_thread: Callable[..., Deferred[Any]]) -> None:
        self.spec = spec
        self._run_in_thread = run_in_thread

    def __call__(self, event: Any) -> Any:
        """
        Run the task: its plain return value when its function returned
        one on the reactor (nothing is left to wait for or cancel), else a
        Deferred of it.
        """
        context: TaskContext = event.payload
        spec = self.spec
        task = context.task
        # Unpacked into the call, so the function gets its own dict anyway.
        kwargs = {**task.kwargs, "context": context} if spec.wants_context else task.kwargs
        if context.cancelled_because is not None:
            return succeed(_CANCELLED)  # cancelled before it was dispatched
        if spec.blocking:
            d = self._run_in_thread(_call_started, context, spec.function, task.args, kwargs)
        else:
            context.begin()  # on the reactor, as cancel() is: cannot lose
            try:
                result = spec.function(*task.args, **kwargs)
            except BaseException:  # as maybeDeferred: SystemExit is the task's failure
                d = fail()
            else:
                if result is None or not inspect.isawaitable(result):
                    return result
                d = result if isinstance(result, Deferred) else ensureDeferred(result)  # type: ignore[arg-type]
        context._running = d
        return d.addErrback(_cancelled_on_purpose, context)

    def __repr__(self) -> str:
        return "<task {}>".format(self.spec.name)


def _cancelled_on_purpose(failure: Failure, context: TaskContext) -> Any:
    if context.cancelled_because is not None and failure.check(CancelledError):
        return _CANCELLED
    return failure


def _call_started(
    context: TaskContext,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    # In the pool thread: a task cancelled while it waited for the thread
    # never runs (its Deferred already failed with CancelledError).
    if not context.begin():
        raise CancelledError("cancelled before it started")
    return function(*args, **kwargs)


class TaskCatalog:
    """
    The tasks a worker can run, by name.
    """

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}
        #: The client the handles of this catalog send with (L{bind}).
        self.client: Any = None

    def bind(self, client: Any) -> Any:
        """
        Make C{client} (a L{txmsg.worker.client.TaskClient}) the one this
        catalog's handles send with; L{None} unbinds.

        @return: C{client}.
        """
        self.client = client
        return client

    @overload
    def task(
        self, function: Callable[P, Coroutine[Any, Any, T]]
    ) -> TaskHandle[P, Coroutine[Any, Any, T], T]: ...

    @overload
    def task(self, function: Callable[P, Deferred[T]]) -> TaskHandle[P, Deferred[T], T]: ...

    @overload
    def task(self, function: Callable[P, T]) -> TaskHandle[P, T, T]: ...

    @overload
    def task(
        self,
        function: None = None,
        *,
        name: str | None = None,
        blocking: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotent: bool = False,
        retry_for: tuple[type[BaseException], ...] | None = None,
        dont_retry_for: tuple[type[BaseException], ...] | None = None,
        backoff: Backoff | None = None,
        rate_limit: str | None = None,
        max_concurrency: int | None = None,
        concurrency_lease: float = 30.0,
    ) -> Declare: ...

    def task(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        blocking: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotent: bool = False,
        retry_for: tuple[type[BaseException], ...] | None = None,
        dont_retry_for: tuple[type[BaseException], ...] | None = None,
        backoff: Backoff | None = None,
        rate_limit: str | None = None,
        max_concurrency: int | None = None,
        concurrency_lease: float = 30.0,
    ) -> Any:
        """
        Declare a task; usable as C{@tasks.task} or C{@tasks.task(...)}.

        @param name: the task name (default: the function's name).
        @param blocking: run it in the worker's thread pool.
        @param timeout: cancel it after this many seconds.
        @param max_retries: retries after failure (default: the worker's).
        @param idempotent: run at most once per task id (needs Redis).
        @param retry_for: retry only these exceptions (see L{RetryRules}).
        @param dont_retry_for: never retry these exceptions.
        @param backoff: the waits between retries (L{Backoff}).
        @param rate_limit: at most this many starts across all workers,
            C{"100/s"}, C{"30/m"} or C{"1000/h"} (needs Redis; see
            L{txmsg.worker.limits}).
        @param max_concurrency: at most this many runs at once across all
            workers (needs Redis).
        @param concurrency_lease: seconds a slot stays taken when its worker
            dies without giving it back (renewed while the task runs).
        @return: a L{TaskHandle}: callable as the function, and with
            C{send}, C{call} and C{s}.
        @raise TypeError: if C{function} is not callable.
        @raise ValueError: if the name is taken or the limits are invalid.
        """

        def declare(f: Callable[..., Any]) -> Any:
            spec = self.add(
                f,
                name=name,
                blocking=blocking,
                timeout=timeout,
                max_retries=max_retries,
                idempotent=idempotent,
                retry_for=retry_for,
                dont_retry_for=dont_retry_for,
                backoff=backoff,
                rate_limit=rate_limit,
                max_concurrency=max_concurrency,
                concurrency_lease=concurrency_lease,
            )
            return TaskHandle(f, spec, self)

        if function is not None:
            return declare(function)
        return declare

    def add(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        blocking: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotent: bool = False,
        retry_for: tuple[type[BaseException], ...] | None = None,
        dont_retry_for: tuple[type[BaseException], ...] | None = None,
        backoff: Backoff | None = None,
        rate_limit: str | None = None,
        max_concurrency: int | None = None,
        concurrency_lease: float = 30.0,
    ) -> TaskSpec:
        """
        Declare C{function} as a task (see L{task}).

        @return: the L{TaskSpec}.
        """
        if not callable(function):
            raise TypeError("a task must be callable, not {!r}".format(function))
        task_name = name or getattr(function, "__name__", None)
        if not isinstance(task_name, str) or not task_name:
            raise ValueError("the task needs a name")
        if task_name in self._specs:
            raise ValueError("a task named {!r} is already declared".format(task_name))
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be positive")
        if max_retries is not None and max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if backoff is not None:
            backoff.policy(max_retries or 0)  # validates the numbers
        rules = RetryRules(retry_for, dont_retry_for)
        rate = limit_options(rate_limit, max_concurrency, concurrency_lease)
        if blocking and inspect.iscoroutinefunction(function):
            raise ValueError("a coroutine function cannot be a blocking task")
        try:
            wants_context = "context" in inspect.signature(function).parameters
        except (TypeError, ValueError):
            wants_context = False
        spec = TaskSpec(
            task_name,
            function,
            blocking,
            timeout,
            max_retries,
            wants_context,
            idempotent,
            rules,
            backoff,
            rate,
            max_concurrency,
            float(concurrency_lease),
        )
        self._specs[task_name] = spec
        return spec

    def get(self, name: str) -> TaskSpec | None:
        """
        The task named C{name}, or L{None}.
        """
        return self._specs.get(name)

    def names(self) -> list[str]:
        """
        The declared task names, sorted.
        """
        return sorted(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def install(
        self, events: EventRegistry, run_in_thread: Callable[..., Deferred[Any]]
    ) -> dict[str, Any]:
        """
        Register every task on the event registry C{events} as the handler of
        C{task.<name>}.

        @param run_in_thread: runs a blocking task: called as
            C{run_in_thread(function, *args, **kwargs)}, returns a Deferred.
        @return: the handler object of each task, by task name (a dispatch
            result's outcome for that handler is the task's outcome).
        """
        handlers = {}
        for spec in self._specs.values():
            handler = _TaskHandler(spec, run_in_thread)
            events.add(spec.event_name, handler, timeout=spec.timeout)
            handlers[spec.name] = handler
        return handlers


#: The old name of L{TaskCatalog}, kept for one release ("registry" now
#: means only L{txmsg.events.EventRegistry}).
TaskRegistry = TaskCatalog


def load_tasks(spec: str) -> TaskCatalog:
    """
    The L{TaskCatalog} named by C{spec}: C{"package.module"} (its C{tasks},
    or its only catalog) or C{"package.module:attribute"}; L{ValueError}
    with a one-line reason when it cannot be loaded.
    """
    return load_named(spec, TaskCatalog, "tasks", "task module")
