# -*- test-case-name: txmsg.test.test_worker_handles -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Typed task handles: what C{@tasks.task} returns.

    @tasks.task
    def add(a: int, b: int) -> int:
        return a + b

    add(2, 3)                         # 5: still the plain function
    ref = await add.send(2, 3)        # TaskRef[int], once the broker has it
    await ref.result(timeout=30)      # 5 (needs a results store)
    await add.call(2, 3)              # 5, by RPC
    add.s(2, 3)                       # Signature[int]: a frozen value
    await add.s(2, 3).send(countdown=10, priority=5, expires=3600)

The handle has the function's parameters (C{ParamSpec}), so a type checker
flags C{add.send(1, "x")}.  Send options go on the signature
(C{add.s(...).send(countdown=...)}) rather than beside the task's own
arguments: PEP 612 allows no extra keyword parameters next to
C{*args: P.args, **kwargs: P.kwargs}, and mypy stops checking the task's
arguments when one is forced in.

A handle sends with the client passed as C{client=}, else with the one its
catalog is bound to (C{tasks.bind(client)}); see C{docs/worker.md}.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, overload

from twisted.internet.defer import Deferred

from txmsg.worker.signature import Signature, find_client

__all__ = ["Declare", "NoResultStore", "TaskFailed", "TaskHandle", "TaskRef", "task_failed"]

P = ParamSpec("P")
C = TypeVar("C")
R = TypeVar("R")
T = TypeVar("T")

#: Statuses that end a task without a result, and the error type reported.
_UNSUCCESSFUL = {"revoked": "TaskRevoked", "expired": "TaskExpired"}


class NoResultStore(RuntimeError):
    """
    A task's status or result was asked for, but the client has no results
    store: the message names the option that configures one.
    """

    def __init__(self, what: str) -> None:
        super().__init__(
            "{} needs a results store: create the client with "
            "TaskClient(..., results='redis://...'), the Redis URL the workers "
            "were started with as --results URL (they record the statuses)".format(what)
        )


class TaskFailed(Exception):
    """
    A task's reply (or its final status) said it failed.

    @ivar task_id: the task id.
    @ivar error_type: the exception type name (e.g. C{"ZeroDivisionError"},
        C{"UnknownTask"}, C{"TaskTimeout"}, C{"TaskRevoked"}).
    @ivar message: the exception message.
    """

    def __init__(self, task_id: str, error_type: str, message: str) -> None:
        super().__init__("task {} failed: {}: {}".format(task_id, error_type, message))
        self.task_id = task_id
        self.error_type = error_type
        self.message = message


def _error_field(error: Any, key: str, default: str) -> str:
    if error is None:
        return default
    if isinstance(error, dict):
        return str(error.get(key, default))
    return str(getattr(error, key, default))


def task_failed(task_id: str, state: Any) -> Exception:
    """
    The L{TaskFailed} for a final state that is not
    C{succeeded}.
    """
    status = getattr(state, "status", "failed")
    error = getattr(state, "error", None)
    error_type = getattr(state, "error_type", None) or _error_field(
        error, "type", _UNSUCCESSFUL.get(status, "Error")
    )
    message = getattr(state, "error_message", None) or _error_field(
        error, "message", "task {}".format(status)
    )
    return TaskFailed(task_id, error_type, message)


class TaskRef(Generic[R]):
    """
    A sent task: its id, and its status and result through a results store.

    @ivar id: the task id.
    @ivar task: the task name.
    @ivar store: the L{txmsg.worker.result_store.IResultStore}, or L{None}.
    """

    def __init__(self, id: str, task: str = "", store: Any = None) -> None:
        self.id = id
        self.task = task
        self.store = store

    def __repr__(self) -> str:
        return "<TaskRef {} {}>".format(self.task, self.id)

    def _store(self, what: str) -> Any:
        if self.store is None:
            raise NoResultStore("TaskRef.{}()".format(what))
        return self.store

    def status(self) -> Deferred[Any]:
        """
        The task's state now (C{.status}, C{.result}, C{.error}), or L{None}.

        @raise NoResultStore: when the client has no results store.
        """
        return self._store("status").status(self.id)

    def result(self, timeout: float | None = None) -> Deferred[R]:
        """
        Wait for the task to finish and return its result.

        @param timeout: seconds; L{None} waits without a limit.
        @return: a Deferred firing with the result, or failing with
            L{TaskFailed} (failed, dead-lettered,
            revoked: C{TaskRevoked}, expired: C{TaskExpired}).
        @raise NoResultStore: when the client has no results store.
        """

        def done(state: Any) -> Any:
            if getattr(state, "status", None) == "succeeded":
                return state.result
            raise task_failed(self.id, state)

        d: Deferred[Any] = self._store("result").wait(self.id, timeout)
        return d.addCallback(done)

    def revoke(self) -> Deferred[None]:
        """
        Revoke the task (not run when delivered; cancelled when running).

        @raise NoResultStore: when the client has no results store.
        """
        return self._store("revoke").revoke(self.id)


class TaskHandle(Generic[P, C, R]):
    """
    A declared task: callable as the function (C{C}: what it returns), and
    sendable (C{R}: its result once awaited).

    @ivar name: the task name.
    @ivar spec: the L{txmsg.worker.tasks.TaskSpec}.
    @ivar catalog: the L{txmsg.worker.TaskCatalog} it was declared on.
    """

    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def __init__(self, function: Callable[P, C], spec: Any, catalog: Any) -> None:
        self._function = function
        self.spec = spec
        self.name: str = spec.name
        self.catalog = catalog
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return "<task {}>".format(self.name)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> C:
        """
        Call the function itself, here and now (as unit tests do).
        """
        return self._function(*args, **kwargs)

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature[R]:
        """
        This call as a frozen L{Signature} (no send options yet).
        """
        return Signature(self.name, args, kwargs, catalog=self.catalog)

    def send(self, *args: P.args, **kwargs: P.kwargs) -> Deferred[TaskRef[R]]:
        """
        Send the task with the catalog's bound client; options:
        C{add.s(...).send(countdown=..., client=...)}.

        @return: a Deferred firing with a L{TaskRef} once the broker
            confirmed the message.
        """
        client = find_client(None, self.catalog, self.name)
        return client.send(self.name, args, kwargs)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Deferred[R]:
        """
        Run the task on a worker and wait for its result (RPC, the client's
        timeout; others: C{add.s(...).call(timeout=...)}).

        @raise txmsg.worker.client.TaskFailed: (in the Deferred) when it failed.
        """
        client = find_client(None, self.catalog, self.name)
        return client.call(self.name, args, kwargs)


class Declare:
    """
    What C{@tasks.task(...)} returns: declares the function it decorates.
    """

    @overload
    def __call__(
        self, function: Callable[P, Coroutine[Any, Any, T]]
    ) -> TaskHandle[P, Coroutine[Any, Any, T], T]: ...

    @overload
    def __call__(self, function: Callable[P, Deferred[T]]) -> TaskHandle[P, Deferred[T], T]: ...

    @overload
    def __call__(self, function: Callable[P, T]) -> TaskHandle[P, T, T]: ...

    def __call__(self, function: Callable[..., Any]) -> Any:
        raise NotImplementedError  # pragma: no cover - a typing declaration
