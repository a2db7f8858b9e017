# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg dead-letters QUEUE [--requeue | --purge]}: inspect and replay the
dead letters of a work queue.

Listing reads up to C{--limit} messages from C{QUEUE.dead} without acking them
and closes the channel, which puts them back: nothing is lost by looking.
C{--requeue} republishes each dead letter to the queue it died in (its
C{x-txmsg-queue} header, else C{QUEUE}) with its attempt count reset, with
confirms, and only then removes it.  C{--purge} deletes them all.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python import usage

from txmsg._coerce import (
    amqp_url_option,
    check_amqp_url,
    seconds,
    url_from_environment,
    whole_number,
)
from txmsg._options import GnuOptions
from txmsg.amqp.url import ENV_VAR as AMQP_ENV_VAR
from txmsg.worker._cli_common import CommandError, amqp_connection, run_command
from txmsg.worker.retry import ATTEMPT_HEADER, dead_letter_queue_name

__all__ = ["Options", "describe", "run"]

_TXMSG_HEADERS = "x-txmsg-"


class Options(GnuOptions):
    """
    Options of C{txmsg dead-letters}.
    """

    synopsis = "QUEUE [--requeue | --purge] [--limit N]"
    optParameters = [
        ["limit", "l", 100, "Look at (or requeue) at most this many.", whole_number("limit", 1)],
        ["amqp", None, None, "RabbitMQ URL (default: $TXMSG_AMQP_URL).", amqp_url_option()],
        [
            "timeout",
            "t",
            10.0,
            "Seconds to wait for the broker.",
            seconds("timeout", 0, above=True),
        ],
    ]
    optFlags = [
        ["requeue", "r", "Send the dead letters back to their work queue."],
        ["purge", "p", "Delete the dead letters."],
        ["json", "j", "Print each dead letter as a JSON line."],
    ]

    def parseArgs(self, queue: str) -> None:  # type: ignore[override]
        """
        The work queue (or its C{.dead} queue).
        """
        self["queue"] = queue[: -len(".dead")] if queue.endswith(".dead") else queue

    def postOptions(self) -> None:
        """
        Validate.
        """
        if self["requeue"] and self["purge"]:
            raise usage.UsageError("--requeue and --purge exclude each other")
        self["amqp"] = url_from_environment(self["amqp"], AMQP_ENV_VAR, check_amqp_url)


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


async def _main(reactor: IReactorTime, options: Options) -> int:
    dead = dead_letter_queue_name(options["queue"])
    async with amqp_connection(reactor, options["amqp"], options["timeout"]) as conn:
        channel = await conn.open_channel()
        try:
            declared = await channel.queue_declare(dead, passive=True)
        except Exception as e:
            raise CommandError("no queue {!r}: {}".format(dead, e)) from None
        total = declared.method.message_count
        if options["purge"]:
            await channel.queue_purge(dead)
            print("purged {} dead letter(s) from {}".format(total, dead))
            return 0
        print("{} dead letter(s) in {}".format(total, dead))
        requeued = 0
        for index in range(min(total, options["limit"])):
            message = await channel.basic_get(dead, auto_ack=False)
            if message is None:
                break
            headers = dict(message.properties.headers or {})
            info = describe(message.body, headers)
            if options["json"]:
                print(json.dumps(info))
            else:
                print(
                    "{:>4}  {} {}  {}  attempts={}  {}  {}".format(
                        index + 1,
                        info["task"],
                        info["id"],
                        info["reason"],
                        info["attempts"],
                        info["failed_at"],
                        info["error"],
                    )
                )
            if options["requeue"]:
                target = headers.get("x-txmsg-queue") or options["queue"]
                clean = {k: v for k, v in headers.items() if not k.startswith(_TXMSG_HEADERS)}
                props = message.properties
                props.headers = clean
                await conn.publish("", target, message.body, properties=props)
                channel.basic_ack(message.method.delivery_tag)
                requeued += 1
        if options["requeue"]:
            print("requeued {} dead letter(s) to their work queue".format(requeued))
        channel.close()  # unacked messages go back to the dead-letter queue
    return 0


def run(reactor: IReactorTime, options: Options) -> Deferred[int]:
    """
    Run C{txmsg dead-letters}.
    """
    return run_command("dead-letters", _main(reactor, options))
