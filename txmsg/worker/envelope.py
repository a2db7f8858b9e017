# -*- test-case-name: txmsg.test.test_worker_envelope -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The task wire format, version 1 (see docs/design.md and docs/worker.md).

A task is an AMQP message with C{content_type=application/json} and
C{delivery_mode=2} whose body is::

    {"task": "name", "args": [...], "kwargs": {...}, "id": "..."}

(C{id} is also the message's C{message_id}).  A result, when the message has
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
    "MalformedTask",
    "Task",
    "TaskResult",
    "decode_result",
    "decode_task",
    "encode_error",
    "encode_result",
    "encode_task",
    "new_task_id",
]

CONTENT_TYPE = "application/json"
_ALLOWED_KEYS = frozenset({"task", "args", "kwargs", "id"})

#: The deepest nesting of arrays and objects a task body may have.  Python's
#: JSON parser recurses once per level and would raise C{RecursionError}
#: long before any reasonable task needs this many.
MAX_DEPTH = 100

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


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
    A message is not a valid v1 task; the message says why.
    """


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
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_task_id)


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
    Serialize C{task} as a v1 body.

    @raise TypeError: when an argument is not JSON-serializable.
    """
    body = {"task": task.name, "args": list(task.args), "kwargs": dict(task.kwargs), "id": task.id}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_task(
    body: bytes, content_type: str | None = None, message_id: str | None = None
) -> Task:
    """
    Parse and validate a v1 task body.

    @param body: the message body.
    @param content_type: the message's content type, if it has one; it must
        be C{application/json} (parameters such as C{charset=utf-8} allowed).
    @param message_id: the message's C{message_id}, used as the id when the
        body names none.
    @raise MalformedTask: with the reason, when the body is not a valid task.
    """
    if content_type is not None and content_type.split(";")[0].strip().lower() != CONTENT_TYPE:
        raise MalformedTask("content type {!r} is not {}".format(content_type, CONTENT_TYPE))
    if not isinstance(body, bytes):
        raise MalformedTask("body must be bytes, not {}".format(type(body).__name__))
    if _nesting_depth(body) > MAX_DEPTH:
        raise MalformedTask("body nests deeper than {} levels".format(MAX_DEPTH))
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise MalformedTask("body is not valid JSON: {}".format(e)) from None
    if not isinstance(data, dict):
        raise MalformedTask("body is a JSON {}, not an object".format(type(data).__name__))
    unknown = set(data) - _ALLOWED_KEYS
    if unknown:
        raise MalformedTask("unknown field(s): {}".format(", ".join(sorted(unknown))))
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
    return Task(name=name, args=tuple(args), kwargs=kwargs, id=task_id)


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
