# -*- test-case-name: txmsg.test.test_worker_states -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A task's stored status (L{TaskState}) and the rules for how it may change.

    pending -> started -> retrying -> started -> ...
            -> succeeded | failed | dead-lettered | revoked | expired

The terminal statuses never change again: a result that says C{succeeded}
is never overwritten by a later delivery of the same message.  The store
(L{txmsg.worker.results}) applies these rules inside Redis, atomically,
with the table that L{allowed_from} gives; this module is the one place
that defines them.  The mapping from what happened to a delivery to the
status it records is L{status_for}.

Pure: plain values in and out, no I/O, no clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ABSENT",
    "DEAD_LETTERED",
    "EXPIRED",
    "FAILED",
    "PENDING",
    "RETRYING",
    "REVOKED",
    "STARTED",
    "STATUSES",
    "SUCCEEDED",
    "TERMINAL",
    "IllegalTransition",
    "TaskState",
    "allowed_from",
    "check_transition",
    "decode_state",
    "encode_fields",
]

PENDING = "pending"
STARTED = "started"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
DEAD_LETTERED = "dead-lettered"
REVOKED = "revoked"
EXPIRED = "expired"

#: Every status, in lifecycle order.
STATUSES = (PENDING, STARTED, RETRYING, SUCCEEDED, FAILED, DEAD_LETTERED, REVOKED, EXPIRED)
#: The statuses that never change again.
TERMINAL = frozenset({SUCCEEDED, FAILED, DEAD_LETTERED, REVOKED, EXPIRED})
#: Stands for "no status stored yet" in the transition table.
ABSENT = "none"

# to -> the statuses it may replace.  A worker may be the first to write
# (the submitter did not record "pending"), so ABSENT precedes everything;
# a redelivery after a crash writes "started" over "started".
_FROM: dict[str, frozenset[str]] = {
    PENDING: frozenset({ABSENT, PENDING}),
    STARTED: frozenset({ABSENT, PENDING, STARTED, RETRYING}),
    RETRYING: frozenset({ABSENT, PENDING, STARTED, RETRYING}),
    SUCCEEDED: frozenset({ABSENT, PENDING, STARTED, RETRYING}),
    FAILED: frozenset({ABSENT, PENDING, STARTED, RETRYING}),
    DEAD_LETTERED: frozenset({ABSENT, PENDING, STARTED, RETRYING}),
    REVOKED: frozenset({ABSENT, PENDING, STARTED, RETRYING}),
    # Expiry is checked before a task starts: a started task does not expire.
    EXPIRED: frozenset({ABSENT, PENDING, RETRYING}),
}

#: What a revoke request may replace: a task that is not running.  A running
#: one becomes "revoked" when its worker has cancelled it.
REVOKE_FROM = frozenset({ABSENT, PENDING, RETRYING})

# Bounds on what is read back: the store is written by anyone who can
# reach Redis.
_MAX_TEXT = 65536


class IllegalTransition(ValueError):
    """
    A status change the lifecycle does not allow.
    """


def allowed_from(status: str) -> frozenset[str]:
    """
    The statuses C{status} may replace (L{ABSENT}: nothing stored yet).

    @raise ValueError: for an unknown status.
    """
    try:
        return _FROM[status]
    except KeyError:
        raise ValueError("unknown task status {!r}".format(status)) from None


def check_transition(current: str | None, new: str) -> None:
    """
    Raise L{IllegalTransition} unless C{current} (L{None}: nothing stored)
    may become C{new}.
    """
    if (current or ABSENT) not in allowed_from(new):
        raise IllegalTransition("a task cannot go from {} to {}".format(current or ABSENT, new))


@dataclass(frozen=True)
class TaskState:
    """
    What the store knows about one task.

    @ivar id: the task id.
    @ivar status: one of L{STATUSES}.
    @ivar task: the task name, when known.
    @ivar result: the task's return value (JSON), when it succeeded.
    @ivar error_type: the exception type name of the last failure.
    @ivar error_message: its message.
    @ivar attempts: runs so far (the run in progress included).
    @ivar created: when it was submitted (seconds since the epoch).
    @ivar started: when its last run started.
    @ivar finished: when it reached a terminal status.
    @ivar worker: the name of the worker that last handled it.
    @ivar parent_id: the task that submitted it, in a workflow.
    @ivar root_id: the first task of its workflow.
    """

    id: str
    status: str
    task: str | None = None
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    attempts: int = 0
    created: float | None = None
    started: float | None = None
    finished: float | None = None
    worker: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def done(self) -> bool:
        """Whether the status is terminal."""
        return self.status in TERMINAL

    @property
    def ok(self) -> bool:
        """Whether the task succeeded."""
        return self.status == SUCCEEDED

    @property
    def error(self) -> dict[str, str | None] | None:
        """
        C{{"type": ..., "message": ...}} of the last failure, or L{None}.
        """
        if self.error_type is None and self.error_message is None:
            return None
        return {"type": self.error_type, "message": self.error_message}

    def as_dict(self) -> dict[str, Any]:
        """
        The state as a JSON-ready dict (what C{txmsg result --json} prints).
        """
        out: dict[str, Any] = {}
        for name in _FIELDS:
            out[name] = getattr(self, name)
        return out


_FIELDS = (
    "id",
    "status",
    "task",
    "result",
    "error_type",
    "error_message",
    "attempts",
    "created",
    "started",
    "finished",
    "worker",
    "parent_id",
    "root_id",
)
# One encoder, made once (json.dumps with options builds one per call).
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_TEXT = ("task", "error_type", "error_message", "worker", "parent_id", "root_id")
_TIMES = ("created", "started", "finished")


def encode_fields(**values: Any) -> list[str]:
    """
    Hash fields for the store: C{[name, text, name, text, ...]}.  L{None}
    is stored as the empty string (read back as L{None}), C{result} as
    JSON, numbers with C{repr}.

    @raise TypeError: when C{result} is not JSON-serializable, or a field
        is unknown.
    """
    out: list[str] = []
    for name, value in values.items():
        if name not in _FIELDS or name in ("id", "status"):
            raise TypeError("no task state field {!r}".format(name))
        if name == "result":
            text = _JSON.encode(value)
        elif value is None:
            text = ""
        elif isinstance(value, float):
            text = repr(value)
        else:
            text = str(value)
        out += [name, text]
    return out


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:_MAX_TEXT]


def _time(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def decode_state(task_id: str, fields: Mapping[Any, Any]) -> TaskState | None:
    """
    A L{TaskState} from the stored hash fields (bytes or text), or L{None}
    when nothing is stored.  Hostile input is tolerated: an unknown status
    reads as it is, malformed numbers as L{None}, malformed JSON results as
    the raw text.
    """
    if not fields:
        return None
    text = {_as_text(k): _as_text(v) for k, v in fields.items()}
    status = _text(text.get("status")) or PENDING
    values: dict[str, Any] = {name: _text(text.get(name)) for name in _TEXT}
    for name in _TIMES:
        values[name] = _time(text.get(name))
    try:
        attempts = int(text.get("attempts") or 0)
    except ValueError:
        attempts = 0
    raw_result = text.get("result") or ""
    result: Any = None
    if raw_result:
        try:
            result = json.loads(raw_result[:_MAX_TEXT])
        except (ValueError, RecursionError):
            result = raw_result[:_MAX_TEXT]
    extra = {k: v for k, v in text.items() if k not in _FIELDS}
    return TaskState(
        id=task_id,
        status=status,
        result=result,
        attempts=max(0, attempts),
        extra=extra,
        **values,
    )


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
