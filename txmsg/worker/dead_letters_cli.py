# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg dead-letters QUEUE [--requeue | --purge]}: inspect and replay the
dead letters of a work queue.

Listing reads up to C{--limit} messages from C{QUEUE.dead} without removing
them.  C{--requeue} republishes each dead letter to the queue it died in with
its attempt count reset, with confirms, and only then removes it (with a
progress bar).  C{--purge} deletes them all.  The operations themselves are
in L{txmsg.worker.dead_letters}, shared with the dashboard.
"""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python import usage

from txmsg._coerce import (
    amqp_url_option,
    check_amqp_url,
    redis_url_option,
    seconds,
    url_from_environment,
    whole_number,
)
from txmsg._options import GnuOptions
from txmsg._progress import progress
from txmsg.amqp.url import ENV_VAR as AMQP_ENV_VAR
from txmsg.worker import dead_letters
from txmsg.worker._cli_common import CommandError, amqp_connection, run_command
from txmsg.worker._dead_letters_redis import dead_letters as redis_dead_letters
from txmsg.worker.dead_letters import DeadLetter, describe
from txmsg.worker.retry import dead_letter_queue_name

__all__ = ["Options", "describe", "run"]


class Options(GnuOptions):
    """
    Options of C{txmsg dead-letters}.
    """

    synopsis = "QUEUE [--requeue | --purge] [--limit N]"
    optParameters = [
        ["limit", "l", 100, "Look at (or requeue) at most this many.", whole_number("limit", 1)],
        ["amqp", None, None, "RabbitMQ URL (default: $TXMSG_AMQP_URL).", amqp_url_option()],
        [
            "broker",
            None,
            None,
            "A redis:// URL: the dead letters of a worker on Redis Streams.",
            redis_url_option("broker"),
        ],
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


def _print(index: int, letter: DeadLetter, as_json: bool) -> None:
    info = letter.info
    if as_json:
        print(json.dumps(info))
        return
    print(
        "{:>4}  {} {}  {}  attempts={}  {}  {}".format(
            index,
            info["task"],
            info["id"],
            info["reason"],
            info["attempts"],
            info["failed_at"],
            info["error"],
        )
    )


async def _main(reactor: IReactorTime, options: Options) -> int:
    if options["broker"] is not None:
        await redis_dead_letters(
            reactor,
            options["broker"],
            options["queue"],
            limit=options["limit"],
            requeue=options["requeue"],
            purge=options["purge"],
            timeout=options["timeout"],
            show=lambda i, body, headers: _print(
                i, DeadLetter("", body, headers, describe(body, headers)), options["json"]
            ),
        )
        return 0
    queue, limit = options["queue"], options["limit"]
    dead = dead_letter_queue_name(queue)
    async with amqp_connection(reactor, options["amqp"], options["timeout"]) as conn:
        try:
            if options["purge"]:
                total = await dead_letters.purge(conn, queue)
                print("purged {} dead letter(s) from {}".format(total, dead))
                return 0
            total = await dead_letters.count(conn, queue)
            print("{} dead letter(s) in {}".format(total, dead))
            shown = 0

            def show(letter: DeadLetter) -> None:
                nonlocal shown
                shown += 1
                _print(shown, letter, options["json"])

            if not options["requeue"]:
                await dead_letters.peek(conn, queue, limit, each=show)
                return 0
            with progress(min(total, limit), "requeued") as bar:

                def requeued(letter: DeadLetter) -> None:
                    show(letter)
                    bar.advance()

                done = await dead_letters.requeue(conn, queue, limit, each=requeued)
        except dead_letters.NoSuchQueue as e:
            raise CommandError(str(e)) from None
        print("requeued {} dead letter(s) to their work queue".format(len(done)))
    return 0


def run(reactor: IReactorTime, options: Options) -> Deferred[int]:
    """
    Run C{txmsg dead-letters}.
    """
    return run_command("dead-letters", _main(reactor, options))
