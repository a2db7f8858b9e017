# -*- test-case-name: txmsg.test.test_echo_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{txmsg echo ENDPOINT [MESSAGE...]}: the command-line echo client.

With a message, sends it (the words joined by spaces) and prints what came
back.  Without one, sends each line of standard input in turn and prints each
reply.  Exits 0 when everything came back; on a refused connection, a timeout
or a lost connection, prints one line to standard error and exits 1.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from typing import BinaryIO, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool

from txmsg._coerce import seconds
from txmsg._options import GnuOptions
from txmsg.echo import EchoClientProtocol, EchoError, connect_echo

__all__ = ["Options", "client_endpoint", "run"]

_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[\w.-]+)):(?P<port>\d+)$")


def client_endpoint(text: str) -> str:
    """
    Turn the shorthands C{PORT} and C{HOST:PORT} into a client endpoint
    string; anything else is taken as an endpoint string already.

    @param text: C{8007}, C{localhost:8007}, C{[::1]:8007} or an endpoint
        string such as C{tcp:host=127.0.0.1:port=8007}.
    @return: a client endpoint string.
    """
    if text.isdigit():
        return "tcp:host=127.0.0.1:port={}".format(text)
    m = _HOST_PORT.match(text)
    if m and not text.startswith(("tcp:", "unix:", "ssl:", "tls:", "tcp6:")):
        host = m.group("host") or m.group("v6").replace(":", r"\:")
        return "tcp:host={}:port={}".format(host, m.group("port"))
    return text


class Options(GnuOptions):
    """
    Options of C{txmsg echo}.
    """

    synopsis = "ENDPOINT [MESSAGE...]"
    longdesc = (
        "ENDPOINT is a client endpoint string (tcp:host=127.0.0.1:port=8007, "
        "unix:path=/run/echo.sock, tls:host=example.com:port=8443) or the shorthand "
        "HOST:PORT or PORT. Without MESSAGE, each line of standard input is echoed."
    )
    optParameters = [
        [
            "timeout",
            "t",
            10.0,
            "Seconds to wait for the connection and for each echo.",
            seconds("timeout", 0, above=True),
        ],
    ]

    def parseArgs(self, endpoint: str, *message: str) -> None:  # type: ignore[override]
        """
        Take the endpoint and the message words.
        """
        self["endpoint"] = client_endpoint(endpoint)
        self["message"] = " ".join(message) if message else None


async def _echo_lines(
    proto: EchoClientProtocol,
    read_line: Callable[[], Awaitable[bytes]],
    out: BinaryIO,
    timeout: float,
) -> None:
    while True:
        line = await read_line()
        if not line:
            return
        reply = await proto.echo(line, timeout)
        out.write(reply)
        out.flush()


async def _main(
    reactor: IReactorTime,
    options: Options,
    read_line: Callable[[], Awaitable[bytes]],
    out: BinaryIO,
) -> int:
    timeout = options["timeout"]
    try:
        proto = await connect_echo(options["endpoint"], timeout=timeout, reactor=reactor)
    except ValueError as e:
        print(
            "txmsg echo: invalid endpoint {!r}: {}".format(options["endpoint"], e), file=sys.stderr
        )
        return 2
    except EchoError as e:
        print("txmsg echo: {}".format(e), file=sys.stderr)
        return 1
    try:
        if options["message"] is not None:
            reply = await proto.echo(options["message"].encode("utf-8"), timeout)
            out.write(reply + b"\n")
            out.flush()
        else:
            await _echo_lines(proto, read_line, out, timeout)
    except EchoError as e:
        print("txmsg echo: {}".format(e), file=sys.stderr)
        return 1
    finally:
        if proto.transport is not None:
            proto.transport.loseConnection()
    return 0


def run(reactor: IReactorTime, options: Options) -> Deferred[int]:
    """
    Run C{txmsg echo}.

    @return: a L{Deferred} firing with the exit status.
    """
    threads = cast(IReactorThreads, reactor)
    pool = threads.getThreadPool()

    def read_line() -> Deferred[bytes]:
        # Standard input may be a terminal: read it off the reactor thread.
        return deferToThreadPool(threads, pool, sys.stdin.buffer.readline)

    return Deferred.fromCoroutine(_main(reactor, options, read_line, sys.stdout.buffer))
