# -*- test-case-name: txmsg.test.test_worker_dead_letters,txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The dead letters of a work queue, as operations on an
L{txmsg.amqp.AMQPConnection}: count, look, requeue, delete, purge.

Used by C{txmsg dead-letters} and by the dashboard, so that both behave the
same.  Looking reads messages from C{QUEUE.dead} with C{basic_get} without
acking them and then closes the channel, which puts them back: nothing is
lost by looking.  Requeueing republishes a dead letter to the queue it died
in (its C{x-txmsg-queue} header, else C{QUEUE}) with txmsg's headers (the
attempt count among them) removed, waits for the publisher confirm, and only
then acks it on the dead-letter queue: a crash in between duplicates a dead
letter, never loses it.

Each dead letter has a I{key}: its C{message_id} (the task id for txmsg
tasks), else a digest of its body, so a page can name one dead letter and a
later request can act on it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from txmsg.worker.retry import ATTEMPT_HEADER, dead_letter_queue_name

__all__ = [
    "DeadLetter",
    "NoSuchQueue",
    "count",
    "delete",
    "describe",
    "message_key",
    "peek",
    "purge",
    "requeue",
]

_TXMSG_HEADERS = "x-txmsg-"


class NoSuchQueue(Exception):
    """
    The dead-letter queue does not exist (no worker declared it yet).
    """


def describe(body: bytes, headers: dict[str, Any]) -> dict[str, Any]:
    """
    The interesting fields of one dead letter.
    """
    try:
        task = json.loads(body)
        name, task_id = (
            (task.get("task"), task.get("id")) if isinstance(task, dict) else (None, None)
        )
    except ValueError:
        name = task_id = None
    failed_at = headers.get("x-txmsg-failed-at")
    return {
        "task": name,
        "id": task_id,
        "reason": headers.get("x-txmsg-reason"),
        "error": "{}: {}".format(
            headers.get("x-txmsg-error-type", "?"), headers.get("x-txmsg-error-message", "")
        ),
        "attempts": headers.get(ATTEMPT_HEADER, "-"),
        "failed_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(failed_at))
        if isinstance(failed_at, (int, float))
        else None,
        "body": body[:200].decode("utf-8", "replace"),
    }


def message_key(message_id: str | None, body: bytes) -> str:
    """
    The key naming a dead letter: its message id, else a digest of its body.
    """
    if message_id:
        return str(message_id)
    return "sha256:" + hashlib.sha256(body).hexdigest()[:20]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class DeadLetter:
    """
    One dead letter as read from the dead-letter queue.

    @ivar key: see L{message_key}.
    @ivar body: the message body.
    @ivar headers: its headers (JSON-able values).
    @ivar info: L{describe}'s summary.
    @ivar target: the queue a requeue sends it to.
    """

    key: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    target: str = ""

    def as_json(self) -> dict[str, Any]:
        """
        A JSON-able view (the body as text, at most 64 KiB).
        """
        return {
            "key": self.key,
            "target": self.target,
            "headers": self.headers,
            "body": self.body[:65536].decode("utf-8", "replace"),
            **{k: v for k, v in self.info.items() if k != "body"},
        }


def _dead_letter(queue: str, message: Any) -> DeadLetter:
    props = message.properties
    headers = _plain(dict(props.headers or {}))
    return DeadLetter(
        key=message_key(getattr(props, "message_id", None), message.body),
        body=message.body,
        headers=headers,
        info=describe(message.body, headers),
        target=str(headers.get("x-txmsg-queue") or queue),
    )


async def _declare(channel: Any, dead: str) -> int:
    try:
        declared = await channel.queue_declare(dead, passive=True)
    except Exception as e:
        raise NoSuchQueue("no queue {!r}: {}".format(dead, e)) from None
    return int(declared.method.message_count)


async def count(conn: Any, queue: str) -> int:
    """
    How many dead letters C{queue} has (L{NoSuchQueue} if its dead-letter
    queue does not exist).
    """
    channel = await conn.open_channel()
    try:
        return await _declare(channel, dead_letter_queue_name(queue))
    finally:
        _close(channel)


def _close(channel: Any) -> None:
    try:
        channel.close()  # unacked messages go back to the dead-letter queue
    except Exception:
        pass  # already closed by a channel error


async def _walk(
    conn: Any,
    queue: str,
    limit: int,
    act: Callable[[Any, DeadLetter, Any], Any] | None,
    keys: Collection[str] | None,
    each: Callable[[DeadLetter], object] | None,
) -> tuple[int, list[DeadLetter]]:
    """
    Read up to C{limit} dead letters, calling C{act(channel, letter,
    message)} on those whose key is in C{keys} (all when L{None}).

    @return: the queue's count when it was opened and the letters acted on
        (or seen, without C{act}).
    """
    dead = dead_letter_queue_name(queue)
    channel = await conn.open_channel()
    try:
        total = await _declare(channel, dead)
        wanted = None if keys is None else set(keys)
        letters: list[DeadLetter] = []
        for _ in range(min(total, limit)):
            message = await channel.basic_get(dead, auto_ack=False)
            if message is None:
                break
            letter = _dead_letter(queue, message)
            if wanted is not None and letter.key not in wanted:
                continue
            if act is not None:
                await act(channel, letter, message)
            letters.append(letter)
            if each is not None:
                each(letter)
            if wanted is not None:
                wanted.discard(letter.key)
                if not wanted:
                    break
        return total, letters
    finally:
        _close(channel)


async def peek(
    conn: Any, queue: str, limit: int = 100, *, each: Callable[[DeadLetter], object] | None = None
) -> tuple[int, list[DeadLetter]]:
    """
    Look at up to C{limit} dead letters of C{queue} without removing them.

    @return: how many there are and the first C{limit}.
    """
    return await _walk(conn, queue, limit, None, None, each)


async def requeue(
    conn: Any,
    queue: str,
    limit: int = 100,
    *,
    keys: Collection[str] | None = None,
    each: Callable[[DeadLetter], object] | None = None,
) -> list[DeadLetter]:
    """
    Send dead letters back to their work queue (those named by C{keys}, or
    the first C{limit}), each confirmed before it is removed.

    @param each: called after each one was requeued (progress).
    @return: those requeued.
    """

    async def send(channel: Any, letter: DeadLetter, message: Any) -> None:
        props = message.properties
        props.headers = {
            k: v for k, v in dict(props.headers or {}).items() if not k.startswith(_TXMSG_HEADERS)
        }
        await conn.publish("", letter.target, message.body, properties=props)
        channel.basic_ack(message.method.delivery_tag)

    return (await _walk(conn, queue, limit, send, keys, each))[1]


async def delete(conn: Any, queue: str, keys: Collection[str], limit: int = 10000) -> list[str]:
    """
    Remove the dead letters named by C{keys} (looking at most C{limit} deep).

    @return: the keys removed.
    """

    async def drop(channel: Any, letter: DeadLetter, message: Any) -> None:
        channel.basic_ack(message.method.delivery_tag)

    return [letter.key for letter in (await _walk(conn, queue, limit, drop, keys, None))[1]]


async def purge(conn: Any, queue: str) -> int:
    """
    Delete every dead letter of C{queue}.

    @return: how many there were.
    """
    dead = dead_letter_queue_name(queue)
    channel = await conn.open_channel()
    try:
        total = await _declare(channel, dead)
        await channel.queue_purge(dead)
        return total
    finally:
        _close(channel)
