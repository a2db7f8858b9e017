# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg send TASK [ARG...]}: submit tasks from the command line.

Each C{ARG} is a JSON value (C{3}, C{'"text"'}, C{'[1, 2]'}) or, when it is
not JSON, a plain string.  Without C{--wait} the task ids are printed once
the broker confirmed the messages; with C{--wait} the results are printed
(as JSON) and the exit status is 1 when a task failed or timed out.
C{--countdown S} or C{--eta TIME} (a UNIX time, or ISO 8601; UTC when it
names no zone) makes the tasks wait in the broker first.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
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
from txmsg.amqp.publisher import PublishReturned
from txmsg.amqp.rpc import RPCUnroutable
from txmsg.amqp.url import ENV_VAR as AMQP_ENV_VAR
from txmsg.worker._cli_common import amqp_connection, json_or_text, run_command, say
from txmsg.worker._send_redis import submit_all
from txmsg.worker.client import TaskClient
from txmsg.worker.envelope import Task
from txmsg.worker.signature import resolve_times

__all__ = ["Options", "run"]


class Options(GnuOptions):
    """
    Options of C{txmsg send}.
    """

    synopsis = (
        "TASK [ARG...] [--kwargs JSON] [--queue Q] [--wait [--timeout S]] [--count N] "
        "[--countdown S | --eta TIME] [--expires S] [--priority N]"
    )
    optParameters = [
        ["kwargs", "k", None, "Keyword arguments as a JSON object."],
        ["queue", "q", "tasks", "The work queue."],
        [
            "timeout",
            "t",
            30.0,
            "Seconds to wait for the broker and, with --wait, for results.",
            seconds("timeout", 0, above=True),
        ],
        [
            "count",
            "n",
            1,
            "Send the task this many times (load generation).",
            whole_number("count", 1),
        ],
        ["amqp", None, None, "RabbitMQ URL (default: $TXMSG_AMQP_URL).", amqp_url_option()],
        [
            "broker",
            None,
            None,
            "A redis:// URL: submit to a worker on Redis Streams (else RabbitMQ at --amqp).",
            redis_url_option("broker"),
        ],
        [
            "in-flight",
            None,
            100,
            "Tasks in flight at once with --count.",
            whole_number("in-flight", 1),
        ],
        [
            "countdown",
            None,
            None,
            "Deliver the task no earlier than this many seconds from now.",
            seconds("countdown", 0),
        ],
        ["eta", None, None, "Deliver the task no earlier than this time (UNIX or ISO 8601)."],
        [
            "expires",
            None,
            None,
            "Do not run the task after this many seconds from now (it is dead-lettered "
            "as expired).",
            seconds("expires", 0, above=True),
        ],
        [
            "priority",
            None,
            None,
            "Message priority 0-255 (for a worker with --max-priority).",
            whole_number("priority", 0),
        ],
    ]
    optFlags = [["wait", "w", "Wait for the results and print them."]]

    def parseArgs(self, task: str, *args: str) -> None:  # type: ignore[override]
        """
        The task name and its positional arguments.
        """
        self["task"] = task
        self["args"] = [json_or_text(a) for a in args]

    def postOptions(self) -> None:
        """
        Validate the keyword arguments; take the URL from the environment
        when C{--amqp} is not given.
        """
        self["amqp"] = url_from_environment(self["amqp"], AMQP_ENV_VAR, check_amqp_url)
        if self["kwargs"] is not None:
            try:
                self["kwargs"] = json.loads(self["kwargs"])
            except ValueError as e:
                raise usage.UsageError("--kwargs is not JSON: {}".format(e))
            if not isinstance(self["kwargs"], dict):
                raise usage.UsageError("--kwargs must be a JSON object")
        if self["eta"] is not None:
            self["eta"] = _eta(self["eta"])
        if (self["eta"] is not None or self["countdown"] is not None) and (
            self["wait"] or (self["eta"] is not None and self["countdown"] is not None)
        ):
            raise usage.UsageError("--countdown and --eta exclude each other and --wait")
        if self["priority"] is not None and self["priority"] > 255:
            raise usage.UsageError("--priority must be from 0 to 255")
        try:
            json.dumps(self["args"])
        except (TypeError, ValueError) as e:  # pragma: no cover - parsed from JSON
            raise usage.UsageError(str(e))


def _eta(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise usage.UsageError(
            "--eta must be a UNIX time or an ISO 8601 time (2030-01-31T12:00:00Z), not {!r}".format(
                text
            )
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


async def _send_to_redis(reactor: IReactorTime, options: Options) -> int:
    when, deadline = resolve_times(
        reactor.seconds(), options["countdown"], options["eta"], options["expires"]
    )
    status = 0
    with progress(options["count"], "done" if options["wait"] else "sent") as meter:

        def done(value: Any, error: str | None) -> None:
            nonlocal status
            if error is not None:
                status = 1
                say("send", error)
            else:
                print(json.dumps(value) if options["wait"] else value)
            meter.advance(failed=error is not None)

        task = Task(
            options["task"], tuple(options["args"]), options["kwargs"] or {}, "", when, deadline
        )
        await submit_all(
            reactor,
            options["broker"],
            options["queue"],
            task,
            options["count"],
            options["wait"],
            options["timeout"],
            done,
            options["priority"],
        )
    return status


async def _send(reactor: IReactorTime, options: Options) -> int:
    if options["broker"] is not None:
        return await _send_to_redis(reactor, options)
    async with amqp_connection(reactor, options["amqp"], options["timeout"]) as conn:
        client = TaskClient(conn, queue=options["queue"], timeout=options["timeout"])
        limit = DeferredSemaphore(options["in-flight"])
        status = 0

        def one(_: Any) -> Deferred[Any]:
            task, args, kwargs = options["task"], options["args"], options["kwargs"]
            extra = {"expires": options["expires"], "priority": options["priority"]}
            if extra == {"expires": None, "priority": None}:
                d = client.submit(
                    task,
                    args,
                    kwargs,
                    wait=options["wait"],
                    countdown=options["countdown"],
                    eta=options["eta"],
                )
            elif options["wait"]:  # with a v2 field: the handles' client API
                d = client.call(task, args, kwargs, **extra)
            else:
                times = {"countdown": options["countdown"], "eta": options["eta"]}
                d = client.send(task, args, kwargs, **times, **extra)
                d.addCallback(lambda ref: ref.id)

            def ok(value: Any) -> None:
                if options["wait"]:
                    print(json.dumps(value))
                else:
                    print(value)
                meter.advance()

            def failed(f: Any) -> None:
                nonlocal status
                status = 1
                if f.check(PublishReturned, RPCUnroutable):
                    say(
                        "send",
                        "no queue named {!r}: start a worker for it first "
                        "(twistd -n txmsg-worker --queue {})".format(
                            options["queue"], options["queue"]
                        ),
                    )
                else:
                    say("send", str(f.value))
                meter.advance(failed=True)

            return d.addCallbacks(ok, failed)

        with progress(options["count"], "done" if options["wait"] else "sent") as meter:
            await gatherResults([limit.run(one, None) for _ in range(options["count"])])
        return status


def run(reactor: IReactorTime, options: Options) -> Deferred[int]:
    """
    Run C{txmsg send}.
    """
    return run_command("send", _send(reactor, options))
