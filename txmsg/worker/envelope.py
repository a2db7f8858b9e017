# -*- test-case-name: txmsg.test.test_worker_envelope -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The task wire format (the whole of it: C{docs/wire.md}).

A task is an AMQP message with C{content_type=application/json} and
C{delivery_mode=2} whose body is, in version 1::

    {"task": "name", "args": [...], "kwargs": {...}, "id": "..."}

(C{id} is also the message's C{message_id}).  Version 2 adds C{"v": 2} and
the optional fields C{eta}, C{expires} (Unix times, seconds), C{parent_id}
and C{root_id}; a body without C{"v"} (or with C{"v": 1}) is version 1.  A
field the version does not define makes the body malformed, so a worker
never misreads a newer message: a version-1 worker dead-letters a version-2
body as C{malformed} ("unknown field(s): v, ..."), and this one dead-letters
a version above L{VERSION} as C{unsupported-version}
(L{UnsupportedVersion}).  L{encode_task} writes version 1 whenever the task
uses no version-2 field, so new clients keep working with old workers.  A result, when the message has
C{reply_to}, goes there with the same C{correlation_id}::

    {"id": "...", "status": "ok", "result": ...}
    {"id": "...", "status": "error", "error": {"type": "...", "message": "..."}}

This module is pure: bytes in, values out, values in, bytes out.  Any AMQP
client in any language can produce and read these messages.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONTENT_TYPE",
    "VERSION",
    "MalformedTask",
    "Task",
    "TaskResult",
    "UnsupportedVersion",
    "decode_result",
    "decode_task",
    "encode_error",
    "encode_result",
    "encode_task",
    "new_task_id",
]

CONTENT_TYPE = "application/json"

#: The newest body version this module reads and writes.
VERSION = 2
_V1_KEYS = frozenset({"task", "args", "kwargs", "id"})
_V2_KEYS = _V1_KEYS | {"v", "eta", "expires", "parent_id", "root_id"}
#: A v1 body may say C{"v": 1}.
_V1_ALLOWED = _V1_KEYS | {"v"}
#: Times beyond this (the year 2286) are not times a client wrote.
_MAX_TIME = 1e10

#: The deepest nesting of arrays and objects a task body may have.  Python's
#: JSON parser recurses once per level and would raise C{RecursionError}
#: long before any reasonable task needs this many.
MAX_DEPTH = 100

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def load_json(body: bytes) -> Any:
    """
    C{json.loads(body)}, without its encoding detection for a body that
    opens an object: C{json.loads} reads bytes as UTF-8 unless the first
    bytes are a byte order mark or hold a NUL (UTF-16 or UTF-32), and a body
    starting with C{b"{"} followed by anything but a NUL is neither.  The
    result and the errors are the same.
    """
    if body[:1] == b"{" and body[1:2] != b"\x00":
        return json.loads(body.decode("utf-8", "surrogatepass"))
    return json.loads(body)


def _nesting_depth(body: bytes) -> int:
    """
    How deep arrays and objects nest in C{body} (brackets inside strings do
    not count); exact for valid JSON, an upper bound for anything else.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return 0  # cannot nest deeper than it has brackets: the common, fast case
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", body)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class MalformedTask(ValueError):
    """
    A message is not a valid task; the message says why, C{reason} is the
    dead-letter reason.
    """

    reason = "malformed"


class UnsupportedVersion(MalformedTask):
    """
    The body is of a version this worker does not know (newer than
    L{VERSION}): it is dead-lettered as C{unsupported-version}, never
    misread.
    """

    reason = "unsupported-version"


def new_task_id() -> str:
    """
    A fresh random task id.
    """
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Task:
    """
    One task to run.

    @ivar name: the task's registered name.
    @ivar args: positional arguments.
    @ivar kwargs: keyword arguments.
    @ivar id: the task id (unique per submission, kept across retries).
    @ivar eta: run no earlier than this Unix time (v2), or L{None}.
    @ivar expires: do not run after this Unix time (v2), or L{None}.
    @ivar parent_id: the id of the task that sent this one (v2), or L{None}.
    @ivar root_id: the id of the first task of its workflow (v2), or L{None}.
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_task_id)
    eta: float | None = None
    expires: float | None = None
    parent_id: str | None = None
    root_id: str | None = None

    @property
    def version(self) -> int:
        """
        The body version this task needs: 1 unless it uses a v2 field.
        """
        if self.eta is None and self.expires is None:
            return 1 if self.parent_id is None and self.root_id is None else 2
        return 2


@dataclass(frozen=True)
class TaskResult:
    """
    The outcome of one task as sent to C{reply_to}.

    @ivar id: the task id.
    @ivar ok: whether the task succeeded.
    @ivar result: its return value when it succeeded.
    @ivar error_type: the exception type name when it failed.
    @ivar error_message: the exception message when it failed.
    """

    id: str
    ok: bool
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None


def encode_task(task: Task) -> bytes:
    """
    Serialize C{task}: a v1 body, or v2 when it uses a v2 field.

    @raise TypeError: when an argument is not JSON-serializable.
    @raise ValueError: when a time is not a finite number.
    """
    body: dict[str, Any] = {
        "task": task.name,
        "args": list(task.args),
        "kwargs": dict(task.kwargs),
        "id": task.id,
    }
    if task.version > 1:
        body["v"] = 2
        for key in ("eta", "expires", "parent_id", "root_id"):
            value = getattr(task, key)
            if value is not None:
                body[key] = value
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_task(
    body: bytes, content_type: str | None = None, message_id: str | None = None
) -> Task:
    """
    Parse and validate a task body (v1 or v2).

    @param body: the message body.
    @param content_type: the message's content type, if it has one; it must
        be C{application/json} (parameters such as C{charset=utf-8} allowed).
    @param message_id: the message's C{message_id}, used as the id when the
        body names none.
    @raise MalformedTask: with the reason, when the body is not a valid task
        (L{UnsupportedVersion} for a newer version).
    """
    if (
        content_type is not None
        and content_type != CONTENT_TYPE
        and content_type.split(";")[0].strip().lower() != CONTENT_TYPE
    ):
        raise MalformedTask("content type {!r} is not {}".format(content_type, CONTENT_TYPE))
    if not isinstance(body, bytes):
        raise MalformedTask("body must be bytes, not {}".format(type(body).__name__))
    if _nesting_depth(body) > MAX_DEPTH:
        raise MalformedTask("body nests deeper than {} levels".format(MAX_DEPTH))
    try:
        data = load_json(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise MalformedTask("body is not valid JSON: {}".format(e)) from None
    if not isinstance(data, dict):
        raise MalformedTask("body is a JSON {}, not an object".format(type(data).__name__))
    version = data.get("v", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MalformedTask("'v' must be a positive integer")
    if version > VERSION:
        raise UnsupportedVersion(
            "body version {} is newer than this worker's ({}): upgrade the worker".format(
                version, VERSION
            )
        )
    allowed = _V1_ALLOWED if version == 1 else _V2_KEYS
    if not data.keys() <= allowed:
        unknown = sorted(set(data) - allowed)
        raise MalformedTask("unknown field(s): {}".format(", ".join(unknown)))
    name = data.get("task")
    if not isinstance(name, str) or not name:
        raise MalformedTask("'task' must be a non-empty string")
    args = data.get("args", [])
    if not isinstance(args, list):
        raise MalformedTask("'args' must be a list")
    kwargs = data.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise MalformedTask("'kwargs' must be an object")
    task_id = data.get("id", message_id)
    if task_id is None:
        task_id = new_task_id()
    if not isinstance(task_id, str) or not task_id:
        raise MalformedTask("'id' must be a non-empty string")
    if version == 1:  # none of the v2 fields
        return Task(name, tuple(args), kwargs, task_id)
    return Task(
        name=name,
        args=tuple(args),
        kwargs=kwargs,
        id=task_id,
        eta=_time(data, "eta"),
        expires=_time(data, "expires"),
        parent_id=_id(data, "parent_id"),
        root_id=_id(data, "root_id"),
    )


def _time(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedTask("{!r} must be a Unix time in seconds (a number)".format(key))
    if not 0 <= value <= _MAX_TIME:  # NaN fails too
        raise MalformedTask("{!r} is not a Unix time: {!r}".format(key, value))
    return float(value)


def _id(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise MalformedTask("{!r} must be a non-empty string".format(key))
    return value


def encode_result(task_id: str, result: Any) -> bytes:
    """
    Serialize a success reply.

    @raise TypeError: when C{result} is not JSON-serializable.
    """
    body = {"id": task_id, "status": "ok", "result": result}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def encode_error(task_id: str, error_type: str, message: str) -> bytes:
    """
    Serialize an error reply.
    """
    body = {"id": task_id, "status": "error", "error": {"type": error_type, "message": message}}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode_result(body: bytes) -> TaskResult:
    """
    Parse a reply body.

    @raise ValueError: when the body is not a v1 reply.
    """
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("status") not in ("ok", "error"):
        raise ValueError("not a v1 task reply: {!r}".format(body[:200]))
    task_id = str(data.get("id", ""))
    if data["status"] == "ok":
        return TaskResult(id=task_id, ok=True, result=data.get("result"))
    error = data.get("error") or {}
    return TaskResult(
        id=task_id,
        ok=False,
        error_type=str(error.get("type", "Error")),
        error_message=str(error.get("message", "")),
    )
