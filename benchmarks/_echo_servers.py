# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Peer echo servers for C{benchmarks/echo.py}, one per process.

    python benchmarks/_echo_servers.py KIND PORT

KIND is one of:

  - C{wire}: L{twisted.protocols.wire.Echo} on Twisted's default reactor
    (epoll on Linux), listening through C{serverFromString};
  - C{wire-wt}: the same C{wire.Echo}, listening through
    L{txmsg.net.transport.server_endpoint} (write-through transport);
  - C{txmsg-wt}: like C{txmsg-factory}, listening through
    L{txmsg.net.transport.server_endpoint};
  - C{txmsg-wt-lean}: C{txmsg-wt} on L{txmsg.net.epollreactor} (no legacy
    log context around each I/O event);
  - C{txmsg-lean}: the C{txmsg-echo} tap service (its defaults) on
    L{txmsg.net.epollreactor}, i.e. C{twistd -r txmsg-epoll txmsg-echo};
  - C{txmsg-factory}: L{txmsg.echo.EchoServerFactory} with the same limits as
    C{twistd txmsg-echo}'s defaults (1000 connections, 300 s idle timeout,
    no events), on the same reactor and set-up as C{wire} (so the two differ
    only in the protocol and factory);
  - C{asyncio}: a stdlib L{asyncio.Protocol} echo (C{data_received} calls
    C{transport.write}), the fastest idiomatic stdlib form;
  - C{uvloop}: the same protocol on uvloop's loop.

Each prints C{LISTENING PORT} once it listens and runs until killed.
"""

from __future__ import annotations

import asyncio
import sys

HOST = "127.0.0.1"


def _listening(port: int, loop: object = None) -> None:
    sys.stdout.write("LISTENING {} on {}\n".format(port, type(loop).__name__))
    sys.stdout.flush()


def _run_tap_lean(port: int) -> None:
    """
    The C{txmsg-echo} service exactly as C{twistd txmsg-echo} builds it
    (its Options with their defaults, C{makeService}), on
    L{txmsg.net.epollreactor} (what C{twistd -r txmsg-epoll txmsg-echo} runs).
    """
    from txmsg.net import epollreactor

    epollreactor.install()
    from twisted.internet import reactor

    from txmsg.tap.echo import Options, makeService

    options = Options()
    options.parseOptions(["--listen", "tcp:{}:interface={}".format(port, HOST)])
    service = makeService(options, reactor)
    service.privilegedStartService()
    service.startService()
    reactor.callWhenRunning(_listening, port, reactor)
    reactor.run()


def _run_twisted(port: int, factory_kind: str) -> None:
    if factory_kind.endswith("-lean"):
        from txmsg.net import epollreactor

        epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory

    if factory_kind in ("wire", "wire-wt"):
        from twisted.protocols.wire import Echo

        factory = Factory.forProtocol(Echo)
    else:
        from txmsg.echo import EchoServerFactory

        factory = EchoServerFactory(max_connections=1000, idle_timeout=300, clock=reactor)
    description = "tcp:{}:interface={}".format(port, HOST)
    if factory_kind in ("wire-wt", "txmsg-wt", "txmsg-wt-lean"):
        from txmsg.net.transport import server_endpoint

        endpoint = server_endpoint(reactor, description)
    else:
        endpoint = serverFromString(reactor, description)
    endpoint.listen(factory).addCallback(lambda _: _listening(port, reactor))
    reactor.run()


class _AsyncioEcho(asyncio.Protocol):
    """
    Echo every chunk straight back.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _serve_asyncio(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_AsyncioEcho, HOST, port, backlog=1024)
    _listening(port, loop)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    """
    Run the server named by C{argv[0]} on port C{argv[1]}.
    """
    kind, port = argv[0], int(argv[1])
    if kind in ("wire", "wire-wt", "txmsg-factory", "txmsg-wt", "txmsg-wt-lean"):
        _run_twisted(port, kind)
    elif kind == "txmsg-lean":
        _run_tap_lean(port)
    elif kind == "asyncio":
        asyncio.run(_serve_asyncio(port))
    elif kind == "uvloop":
        import uvloop

        uvloop.run(_serve_asyncio(port))
    else:
        raise SystemExit("unknown server kind {!r}".format(kind))


if __name__ == "__main__":
    main(sys.argv[1:])
