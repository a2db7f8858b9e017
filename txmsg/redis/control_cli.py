# -*- test-case-name: txmsg.test.test_redis_control -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg control NAME COMMAND [ARGS]}: send a control command to a worker.

    txmsg control worker-1 ping
    txmsg control worker-1 status
    txmsg control worker-1 shutdown
    txmsg control worker-1 stop-job 8f2c...          (or job_id=8f2c...)
    txmsg control --wait worker-1 shutdown           (wait for an acknowledgement)

C{ping} and C{status} (and any command with C{--wait}) print the worker's
JSON reply and exit 0, or print an error to stderr and exit 1 when no reply
comes within C{--timeout}.  Other commands exit 0 when at least one listener
received the command and 1 when nobody listens on C{rq:pubsub:NAME}.

Also runnable as C{python -m txmsg.redis.control_cli NAME COMMAND [ARGS]}.
"""

from __future__ import annotations

import json
import sys

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import react
from twisted.python import usage

from txmsg._coerce import check_redis_url, redis_url_option, seconds, url_from_environment
from txmsg._options import GnuOptions, usage_error_line
from txmsg.redis._state import RedisConnectionFailed
from txmsg.redis.connection import RedisConnection
from txmsg.redis.control import REPLY_COMMANDS, ControlTimeout, send_control
from txmsg.redis.pubsub import PubSub
from txmsg.redis.url import ENV_VAR, parse_redis_url

__all__ = ["Options", "run", "main"]


class Options(GnuOptions):
    """
    Options of C{txmsg control}.
    """

    synopsis = "[options] NAME COMMAND [ARGS...]"
    longdesc = (
        "Send COMMAND to the worker NAME over its Redis control channel "
        "rq:pubsub:NAME (RQ compatible). ARGS are key=value pairs; stop-job "
        "also takes the job id alone. ping and status print the reply."
    )
    optParameters = [
        [
            "redis",
            "r",
            None,
            "Redis URL (default: $" + ENV_VAR + ", else redis://127.0.0.1:6379/0).",
            redis_url_option(),
        ],
        [
            "timeout",
            "t",
            5.0,
            "Seconds to wait for Redis and for a reply.",
            seconds("timeout", 0, above=True),
        ],
    ]
    optFlags = [["wait", "w", "Wait for a reply to any command, not only ping/status."]]

    def parseArgs(self, name: str, command: str, *args: str) -> None:  # type: ignore[override]
        """
        NAME COMMAND [key=value ...].
        """
        self["name"] = name
        self["command"] = command
        fields: dict[str, str] = {}
        for arg in args:
            key, sep, value = arg.partition("=")
            if sep:
                fields[key] = value
            elif command in ("stop-job", "stop-execution") and "job_id" not in fields:
                fields["job_id"] = arg
            elif command == "stop-execution" and "execution_id" not in fields:
                fields["execution_id"] = arg
            else:
                raise usage.UsageError(f"argument {arg!r} is not key=value")
        self["args"] = fields

    def postOptions(self) -> None:
        """
        Resolve the Redis URL (C{--redis}, else the environment).
        """
        url = url_from_environment(self["redis"], ENV_VAR, check_redis_url)
        self["url"] = parse_redis_url(url)


async def _run(reactor: IReactorTime, options: Options) -> int:
    timeout = options["timeout"]
    wait = bool(options["wait"]) or options["command"] in REPLY_COMMANDS
    conn = RedisConnection(options["url"], reactor=reactor, command_timeout=timeout)
    pubsub = PubSub(options["url"], reactor=reactor)
    conn.startService()
    if wait:
        pubsub.startService()
    try:
        await conn.when_connected(timeout)
        result = await send_control(
            conn,
            pubsub,
            options["name"],
            options["command"],
            options["args"],
            wait_reply=wait,
            timeout=timeout,
            clock=reactor,
        )
    except (ControlTimeout, RedisConnectionFailed) as e:
        sys.stderr.write(f"txmsg control: {e}\n")
        return 1
    except Exception as e:
        sys.stderr.write(f"txmsg control: {type(e).__name__}: {e}\n")
        return 1
    finally:
        if pubsub.running:
            await pubsub.stopService()
        await conn.stopService()
    if wait:
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
        return 0 if result.get("ok") else 1
    if not result:
        sys.stderr.write("txmsg control: nobody listens on rq:pubsub:{}\n".format(options["name"]))
        return 1
    sys.stdout.write(
        "sent {} to rq:pubsub:{} ({} listener(s))\n".format(
            options["command"], options["name"], result
        )
    )
    return 0


def run(reactor: IReactorTime, options: Options) -> Deferred[int]:
    """
    Send the command described by parsed C{options}; fires with the exit
    status (0 ok, 1 no listener / no reply / error).
    """
    return Deferred.fromCoroutine(_run(reactor, options))


def main(argv: list[str] | None = None) -> None:
    """
    Parse C{argv} (default C{sys.argv[1:]}) and run; exits the process.
    """
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        sys.stderr.write(usage_error_line("txmsg control", e) + "\n")
        raise SystemExit(2) from None

    def exit_with(code: int) -> None:
        if code:
            raise SystemExit(code)

    react(lambda reactor: run(reactor, options).addCallback(exit_with))


if __name__ == "__main__":
    main()
