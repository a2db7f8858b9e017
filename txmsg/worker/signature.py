# -*- test-case-name: txmsg.test.test_worker_handles -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{Signature}: one task call as a frozen value (task name, arguments and
send options), to send now or later, or to hand to a workflow.

    sig = add.s(2, 3)                          # Signature[int]
    ref = await sig.send(countdown=10, priority=5)
    later = sig.with_options(queue="slow")     # a new value; sig is unchanged
    Signature.from_dict(sig.to_dict()) == sig  # JSON-safe

Also the arithmetic of the send options (L{resolve_times}): pure, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from twisted.internet.defer import Deferred

if TYPE_CHECKING:  # pragma: no cover
    from txmsg.worker.handles import TaskRef

__all__ = ["SEND_OPTIONS", "NoClient", "Signature", "find_client", "resolve_times"]

R = TypeVar("R")

#: What C{send} accepts besides the task's own arguments.
SEND_OPTIONS = frozenset(
    {"countdown", "eta", "expires", "priority", "task_id", "queue", "parent_id", "root_id"}
)
#: What C{call} accepts (C{timeout}: seconds to wait for the result).
CALL_OPTIONS = frozenset({"timeout", "expires", "priority", "task_id", "queue"})


class NoClient(RuntimeError):
    """
    A task was sent, but no client was given and its catalog is bound to
    none.
    """


def find_client(client: Any, catalog: Any, task: str) -> Any:
    """
    The client to send with: C{client} when given, else the one C{catalog}
    is bound to (L{txmsg.worker.TaskCatalog.bind}).

    @raise NoClient: naming both ways to give one.
    """
    if client is not None:
        return client
    bound = getattr(catalog, "client", None)
    if bound is None:
        raise NoClient(
            "no client to send task {!r} with: pass client=TaskClient(...) or bind the "
            "catalog once with tasks.bind(client)".format(task)
        )
    return bound


def _unix(value: Any, what: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("{} must be a timezone-aware datetime (or a Unix time)".format(what))
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError("{} must be a number or an aware datetime, not {!r}".format(what, value))
    return float(value)


def resolve_times(
    now: float,
    countdown: float | None = None,
    eta: Any = None,
    expires: Any = None,
) -> tuple[float | None, float | None]:
    """
    The envelope's absolute times from the send options.

    @param now: the current Unix time.
    @param countdown: run no earlier than this many seconds from now.
    @param eta: run no earlier than this Unix time or aware C{datetime}
        (not with C{countdown}).
    @param expires: do not run after this many seconds from now (a number)
        or after this aware C{datetime}.
    @return: C{(eta, expires)}, Unix times or L{None}.
    @raise ValueError: for both C{countdown} and C{eta}, a negative
        countdown, or an expiry before the ETA.
    """
    if countdown is not None and eta is not None:
        raise ValueError("give countdown or eta, not both")
    when = None
    if countdown is not None:
        if _unix(countdown, "countdown") < 0:
            raise ValueError("countdown must be >= 0")
        when = now + float(countdown)
    elif eta is not None:
        when = _unix(eta, "eta")
    deadline = None
    if expires is not None:
        if isinstance(expires, datetime):
            deadline = _unix(expires, "expires")
        else:
            deadline = now + _unix(expires, "expires")
        if deadline < (when if when is not None else now):
            raise ValueError("the task would expire before it may run")
    return when, deadline


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Signature(Generic[R]):
    """
    One task call: C{task(*args, **kwargs)} with send C{options}.

    @ivar task: the task name.
    @ivar args: positional arguments.
    @ivar kwargs: keyword arguments (read-only).
    @ivar options: send options (L{SEND_OPTIONS}; read-only).
    @ivar catalog: the L{txmsg.worker.TaskCatalog} the task was declared on,
        whose bound client L{send} uses by default (not part of the value).
    """

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    catalog: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ValueError("a signature needs a task name")
        unknown = set(self.options) - SEND_OPTIONS
        if unknown:
            raise TypeError("unknown send option(s): {}".format(", ".join(sorted(unknown))))
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", _frozen(self.kwargs))
        object.__setattr__(self, "options", _frozen(self.options))

    def __hash__(self) -> int:
        return hash((self.task, self.args, tuple(sorted(self.kwargs.items()))))

    def with_options(self, **options: Any) -> Signature[R]:
        """
        A copy with these send options added (or replaced).
        """
        return replace(self, options={**self.options, **options})

    def send(self, client: Any = None, **options: Any) -> Deferred[TaskRef[R]]:
        """
        Send the task (see L{txmsg.worker.client.TaskClient.send}).

        @param client: the client (default: the catalog's bound client).
        @param options: send options, over those of the signature.
        @return: a Deferred firing with a L{txmsg.worker.handles.TaskRef}
            once the broker confirmed the message.
        """
        merged = {**self.options, **options}
        sender = find_client(client, self.catalog, self.task)
        return sender.send(self.task, self.args, dict(self.kwargs), **merged)

    def call(self, client: Any = None, timeout: float | None = None, **options: Any) -> Deferred[R]:
        """
        Run the task and wait for its result (RPC).

        @param timeout: seconds (default: the client's).
        @raise txmsg.worker.client.TaskFailed: (in the Deferred) when it failed.
        """
        merged = {k: v for k, v in {**self.options, **options}.items() if k in CALL_OPTIONS}
        sender = find_client(client, self.catalog, self.task)
        return sender.call(self.task, self.args, dict(self.kwargs), timeout=timeout, **merged)

    def to_dict(self) -> dict[str, Any]:
        """
        A JSON-safe dict (the arguments must be JSON-serializable).
        """
        return {
            "task": self.task,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], catalog: Any = None) -> Signature[Any]:
        """
        The signature L{to_dict} wrote.
        """
        return cls(
            data["task"],
            tuple(data.get("args", ())),
            data.get("kwargs", {}),
            data.get("options", {}),
            catalog,
        )
