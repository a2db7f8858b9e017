# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What the worker-side console commands share: connecting to RabbitMQ with a
clear error, and parsing arguments given as JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from txmsg.amqp.connection import AMQPConnection, AMQPConnectionFailed, NotConnectedError

__all__ = ["CommandError", "amqp_connection", "json_or_text", "run_command", "say"]


class CommandError(Exception):
    """
    A console command cannot go on; the message is printed as one line.
    """


def say(command: str, message: str) -> None:
    """
    Print one error line for C{command} on standard error.
    """
    print("txmsg {}: {}".format(command, message), file=sys.stderr)


def run_command(command: str, main: Awaitable[int]) -> Any:
    """
    Run a command's coroutine on the reactor: its exit status, or 1 with one
    line on standard error when it raised L{CommandError}.

    @return: a Deferred firing with the exit status.
    """

    async def guarded() -> int:
        try:
            return await main
        except CommandError as e:
            say(command, str(e))
            return 1

    return Deferred.fromCoroutine(guarded())


def json_or_text(value: str) -> Any:
    """
    A command-line argument as JSON (C{3}, C{"x"}, C{[1,2]}, C{true}), or as
    the plain string when it is not JSON (C{hello}).
    """
    try:
        return json.loads(value)
    except ValueError:
        return value


@asynccontextmanager
async def amqp_connection(
    reactor: IReactorTime, url: str | None, timeout: float
) -> AsyncIterator[Any]:
    """
    A started, ready L{txmsg.amqp.AMQPConnection}, stopped cleanly on exit.

    @raise CommandError: when the broker cannot be reached within C{timeout}.
    """
    conn = AMQPConnection(url, reactor=reactor, connection_name="txmsg cli")
    conn.startService()
    try:
        try:
            await conn.when_ready(timeout)
        except AMQPConnectionFailed as e:  # a refused login, a TLS failure
            raise CommandError(str(e)) from None
        except NotConnectedError as e:
            raise CommandError("cannot reach RabbitMQ: {}".format(e)) from None
        yield conn
    finally:
        await conn.stopService()
