# -*- test-case-name: txmsg.test.test_tap_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{twistd txmsg-echo}: Options and makeService.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.application.internet import UDPServer
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.logger import Logger
from twisted.python import usage

from txmsg._coerce import seconds, whole_number
from txmsg._endpoints import loopback_by_default
from txmsg._reactor import maybe_global_reactor
from txmsg.echo import EchoDatagramProtocol, EchoServerFactory
from txmsg.net.listen import listening_service
from txmsg.net.transport import write_through_applies
from txmsg.ops.options import OpsOptions
from txmsg.ops.service import echo_health
from txmsg.tap._listen_failure import exit_if_cannot_listen

__all__ = [
    "DEFAULT_LISTEN",
    "EchoService",
    "Options",
    "loopback_by_default",
    "makeService",
]

DEFAULT_LISTEN = "tcp:8007:interface=127.0.0.1"

_log = Logger()


def _udp_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", whole_number("udp")(port))


_udp_address.coerceDoc = "[HOST:]PORT."  # type: ignore[attr-defined]


class Options(OpsOptions):
    """
    Command-line options of C{twistd txmsg-echo}.
    """

    synopsis = (
        "[--listen ENDPOINT]... [--max-connections N] [--idle-timeout SECONDS] "
        "[--udp [HOST:]PORT] [--no-write-through] "
        "[--health ENDPOINT] [--log-format text|json]"
    )
    longdesc = (
        "Echo every byte back to its sender. ENDPOINT is a Twisted server endpoint "
        "string: tcp:8007, unix:/run/echo.sock, ssl:8443:privateKey=key.pem:certKey=cert.pem. "
        "TCP and SSL endpoints without interface= listen on 127.0.0.1 only; "
        "add interface=0.0.0.0 to listen on every interface. Default: "
        + DEFAULT_LISTEN
        + ". TCP connections send replies at once when nothing is buffered "
        "(write-through); --no-write-through restores Twisted's standard "
        "buffered writes. Unless twistd's --reactor (-r) names a reactor, the "
        "server runs on txmsg's lean epoll reactor (txmsg-epoll, Linux); "
        "-r epoll gives Twisted's stock one."
    )
    optFlags = [
        [
            "no-write-through",
            None,
            "Use Twisted's standard write path (buffer, send on the next writability event).",
        ],
    ]
    optParameters = [
        [
            "max-connections",
            "c",
            1000,
            "Close connections beyond this many at once (0: no limit).",
            whole_number("max-connections"),
        ],
        [
            "idle-timeout",
            "t",
            300.0,
            "Close connections idle for this many seconds (0: never).",
            seconds("idle-timeout"),
        ],
        [
            "udp",
            "u",
            None,
            "Also echo UDP datagrams on [HOST:]PORT (HOST defaults to 127.0.0.1).",
            _udp_address,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        Listen on this endpoint (repeat for several).
        """
        description = loopback_by_default(description)
        try:
            serverFromString(None, description)
        except Exception as e:
            raise usage.UsageError(
                "invalid --listen endpoint {!r}: {}".format(description, e or type(e).__name__)
            )
        self["listen"].append(description)

    opt_l = opt_listen

    def postOptions(self) -> None:
        """
        Fill in the default endpoint.
        """
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        self.post_ops_options()


def _address(address: Any) -> str:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None and port is not None:
        return "[{}]:{}".format(host, port) if ":" in host else "{}:{}".format(host, port)
    name = getattr(address, "name", None)
    if isinstance(name, bytes):
        return name.decode("utf-8", "replace")
    return str(name if name is not None else address)


def _announce(description: str) -> Callable[[Any], None]:
    def announce(address: Any) -> None:
        _log.info(
            "txmsg-echo listening on {description} ({address})",
            description=description,
            address=_address(address),
        )

    return announce


class EchoService(MultiService):
    """
    The listeners of one echo factory; stopping it stops listening and then
    closes the open connections once their pending replies are written.

    @ivar factory: the L{EchoServerFactory} shared by every listener.
    """

    log = Logger()

    def __init__(self, factory: EchoServerFactory) -> None:
        super().__init__()
        self.factory = factory

    def privilegedStartService(self) -> None:
        """
        Start listening; a port that cannot be opened ends start-up with
        one line saying why (see L{exit_if_cannot_listen}).
        """
        with exit_if_cannot_listen(self.log):
            super().privilegedStartService()

    def stopService(self) -> Deferred[None]:
        """
        Stop listening, then close the open connections.
        """
        d: Deferred[Any] = super().stopService()

        def close(_: Any) -> Deferred[None]:
            open_now = len(self.factory.connections)
            if open_now:
                self.log.info("Closing {n} open echo connection(s)", n=open_now)
            return self.factory.close_all()

        return d.addCallback(close)


def makeService(options: Options, reactor: IReactorTime | None = None) -> EchoService:
    """
    Build the echo service tree: one listener per C{--listen}, plus UDP if asked.

    @param options: parsed L{Options}.
    @param reactor: the reactor; the global one by default.
    """
    reactor = maybe_global_reactor(reactor)
    factory = EchoServerFactory(
        max_connections=options["max-connections"],
        idle_timeout=options["idle-timeout"],
        clock=reactor,
    )
    service = EchoService(factory)
    write_through = not options["no-write-through"]
    _log.info(
        "txmsg-echo write path: {path}",
        path="standard (--no-write-through)"
        if not write_through
        else "write-through for tcp: listeners"
        if write_through_applies(reactor)
        else "standard (write-through not available on {})".format(type(reactor).__name__),
    )
    for description in options["listen"]:
        child = listening_service(
            cast(IReactorCore, reactor),  # a reactor that listens (see txmsg._reactor)
            description,
            factory,
            announce=_announce(description),
            write_through=write_through,
        )
        child.setName("listen:" + description)
        child.setServiceParent(service)
    if options["udp"] is not None:
        host, port = options["udp"]
        udp = UDPServer(port, EchoDatagramProtocol(), interface=host, reactor=reactor)
        udp.setName("udp:{}:{}".format(host, port))
        udp.setServiceParent(service)
    if options["health"] is not None:
        health = echo_health(service, options["health"], reactor=reactor)
        health.setName("health")
        health.setServiceParent(service)
    return service
