# -*- test-case-name: txmsg.test.test_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The echo client: L{EchoClientProtocol} (pipelined C{echo(payload)} calls on
one connection), L{EchoClientFactory}, L{connect_echo}, the one-shot L{echo}
and the errors they fail with (L{EchoError} and its subclasses).

Public names are re-exported by L{txmsg.echo}.
"""

from __future__ import annotations

from collections import deque
from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._reactor import maybe_global_reactor

__all__ = [
    "EchoClientFactory",
    "EchoClientProtocol",
    "EchoConnectFailed",
    "EchoConnectionLost",
    "EchoError",
    "EchoTimeout",
    "connect_echo",
    "echo",
]


class EchoError(Exception):
    """
    Base class of the echo client's errors.
    """


class EchoConnectFailed(EchoError):
    """
    The connection to the echo server could not be made.
    """


class EchoConnectionLost(EchoError):
    """
    The connection closed before the whole payload came back.
    """


class EchoTimeout(EchoError):
    """
    The connection or the echo took longer than its timeout.
    """


class _Request:
    __slots__ = ("size", "deferred", "timer")

    def __init__(self, size: int, deferred: Deferred[bytes]) -> None:
        self.size = size
        self.deferred = deferred
        self.timer: IDelayedCall | None = None


class EchoClientProtocol(Protocol):
    """
    Send payloads to an echo server and get each one back.

    Calls to L{echo} may be pipelined: each returned L{Deferred} fires, in
    order, once as many bytes as its payload came back (in however many
    chunks).  A timeout or cancellation of one call closes the connection,
    since the replies that follow could no longer be told apart; every other
    pending call then fails with L{EchoConnectionLost}.
    """

    transport: ITCPTransport
    log = Logger()

    def __init__(self, clock: IReactorTime | None = None) -> None:
        """
        @param clock: the reactor (or a L{Clock}) for timeouts.
        """
        self._clock = clock
        self._pending: deque[_Request] = deque()
        self._buffer = bytearray()
        self._lost: Failure | None = None
        self.bytes_sent = 0
        self.bytes_received = 0

    def echo(self, payload: bytes, timeout: float | None = None) -> Deferred[bytes]:
        """
        Send C{payload} and wait for it to come back.

        @param payload: the bytes to send.
        @param timeout: seconds to wait for the whole echo, or L{None}.
        @return: a L{Deferred} firing with the echoed bytes, or failing with
            L{EchoTimeout}, L{EchoConnectionLost} or L{CancelledError}.
        """
        if not isinstance(payload, bytes):
            raise TypeError("payload must be bytes, not {}".format(type(payload).__name__))
        if self._lost is not None:
            return fail(
                EchoConnectionLost("connection already closed: " + self._lost.getErrorMessage())
            )
        request = _Request(len(payload), Deferred(lambda d: self._abandon(request, None)))
        if not payload:
            request.deferred.callback(b"")
            return request.deferred
        self._pending.append(request)
        if timeout is not None:
            request.timer = maybe_global_reactor(self._clock).callLater(
                timeout, self._abandon, request, timeout
            )
        self.transport.write(payload)
        self.bytes_sent += len(payload)
        return request.deferred

    def dataReceived(self, data: bytes) -> None:
        """
        Collect echoed bytes and fire every request that is complete.
        """
        self.bytes_received += len(data)
        buffer = self._buffer
        buffer += data
        pending = self._pending
        while pending and len(buffer) >= pending[0].size:
            request = pending.popleft()
            chunk = bytes(buffer[: request.size])
            del buffer[: request.size]
            if request.timer is not None and request.timer.active():
                request.timer.cancel()
            request.deferred.callback(chunk)
        if buffer and not pending:
            self.log.warn("Discarding {n} unexpected bytes from the echo server", n=len(buffer))
            buffer.clear()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Fail every pending request with L{EchoConnectionLost}.
        """
        self._lost = reason
        pending, self._pending = self._pending, deque()
        got = len(self._buffer)
        for request in pending:
            if request.timer is not None and request.timer.active():
                request.timer.cancel()
            request.deferred.errback(
                EchoConnectionLost(
                    "connection closed after {} of {} bytes came back: {}".format(
                        got, request.size, reason.getErrorMessage()
                    )
                )
            )
            got = 0

    def _abandon(self, request: _Request, timeout: float | None) -> None:
        if request not in self._pending:
            return
        self._pending.remove(request)
        if request.timer is not None and request.timer.active():
            request.timer.cancel()
        if timeout is not None:
            request.deferred.errback(EchoTimeout("no complete echo within {}s".format(timeout)))
        elif not request.deferred.called:
            request.deferred.errback(CancelledError())
        self.transport.abortConnection()


class EchoClientFactory(Factory):
    """
    Build L{EchoClientProtocol}s sharing one clock.
    """

    protocol = EchoClientProtocol

    def __init__(self, clock: IReactorTime | None = None) -> None:
        """
        @param clock: the reactor (or a L{Clock}) for timeouts.
        """
        self.clock = clock

    def buildProtocol(self, addr: IAddress | None) -> EchoClientProtocol:
        """
        Build one client protocol.
        """
        proto = EchoClientProtocol(self.clock)
        proto.factory = self
        return proto


def _endpoint(
    endpoint: IStreamClientEndpoint | str, reactor: IReactorTime
) -> IStreamClientEndpoint:
    if isinstance(endpoint, str):
        return clientFromString(reactor, endpoint)
    return endpoint


def connect_echo(
    endpoint: IStreamClientEndpoint | str,
    *,
    timeout: float | None = 30.0,
    reactor: IReactorTime | None = None,
) -> Deferred[EchoClientProtocol]:
    """
    Connect to an echo server.

    @param endpoint: an endpoint, or a client endpoint string such as
        C{"tcp:host=127.0.0.1:port=8007"} or C{"unix:path=/run/echo.sock"}.
    @param timeout: seconds to wait for the connection, or L{None}.
    @param reactor: the reactor; the global one by default.
    @return: a L{Deferred} firing with a connected L{EchoClientProtocol}, or
        failing with L{EchoConnectFailed} or L{EchoTimeout}.
    """
    reactor = maybe_global_reactor(reactor)
    ep = _endpoint(endpoint, reactor)
    d = ep.connect(EchoClientFactory(reactor))
    described = endpoint if isinstance(endpoint, str) else repr(endpoint)

    def timed_out(result: Any, seconds: float) -> Any:
        raise EchoTimeout("could not connect to {} within {}s".format(described, seconds))

    if timeout is not None:
        d.addTimeout(timeout, reactor, onTimeoutCancel=timed_out)

    def failed(f: Failure) -> Failure:
        if f.check(EchoTimeout, CancelledError):
            return f
        if f.check(ConnectingCancelledError):
            raise CancelledError()
        raise EchoConnectFailed(
            "could not connect to {}: {}".format(described, f.getErrorMessage())
        )

    return cast("Deferred[EchoClientProtocol]", d.addErrback(failed))


def echo(
    endpoint: IStreamClientEndpoint | str,
    payload: bytes,
    *,
    timeout: float | None = 10.0,
    reactor: IReactorTime | None = None,
) -> Deferred[bytes]:
    """
    Connect, echo one payload, disconnect.

    @param endpoint: as for L{connect_echo}.
    @param payload: the bytes to send.
    @param timeout: seconds for the connection and again for the echo.
    @param reactor: the reactor; the global one by default.
    @return: a L{Deferred} firing with the echoed bytes.
    """

    def connected(proto: EchoClientProtocol) -> Deferred[bytes]:
        def done(result: Any) -> Any:
            proto.transport.loseConnection()
            return result

        return proto.echo(payload, timeout).addBoth(done)

    return connect_echo(endpoint, timeout=timeout, reactor=reactor).addCallback(connected)
