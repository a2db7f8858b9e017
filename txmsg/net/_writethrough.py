# -*- test-case-name: txmsg.test.test_writethrough -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Write-through TCP transports (server and client side), built on Twisted's
private TCP internals (with L{txmsg.net.epollreactor}, the only code of
txmsg that is).

Twisted's C{FileDescriptor.write} always appends to the write buffer and
asks the reactor for a writability event (an C{epoll_ctl} to arm
C{EPOLLOUT}); the bytes go out on the next reactor iteration, and a second
C{epoll_ctl} disarms it.  For a request/response protocol that writes one
reply per read, that is two system calls and one extra loop iteration per
round trip.  L{WriteThroughMixin} (in L{WriteThroughServer} and
L{WriteThroughClient}) sends at once when nothing is buffered and
buffers only what the kernel did not take; from then on (remainder queued,
producer paused, TLS started, closing or half-closed) every call goes to
Twisted's own code unchanged.

Internals used (checked by L{internals_ok} and by
C{txmsg.test.test_writethrough.TwistedInternalsTests}, which fail loudly when
a Twisted upgrade changes them):

  - C{tcp.Port.transport} (the class the port builds per connection),
    C{tcp.Connector._makeTransport} (the same for outgoing connections),
    and C{PosixReactorBase.listenTCP}/C{connectTCP} (what we mirror);
  - on the transport: C{socket}, C{protocol}, C{connected},
    C{disconnecting}, C{TLS}, C{producerPaused}, C{dataBuffer},
    C{_tempDataLen}, C{_writeDisconnecting}, C{_writeDisconnected},
    C{_aborting}; that C{FileDescriptor.write} queues into
    C{_tempDataBuffer}/C{_tempDataLen}, and that C{doWrite} resets
    C{dataBuffer} to C{b""} once everything is sent;
  - C{doRead} replicates C{tcp.Connection.doRead} + C{_dataReceived}
    (an empty read is C{CONNECTION_DONE}).

The fast path is used only on a Twisted release inside the range these
internals were tested on (L{txmsg.net._versions}) whose transports also pass
L{internals_ok}'s probe; otherwise L{applies} is false and callers fall back
to the standard transport: slower, never wrong.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from twisted.internet import abstract, main, tcp
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger
from zope.interface import directlyProvides, providedBy

from txmsg.net._versions import tested_range_text, tested_twisted, twisted_version

__all__ = [
    "WriteThroughClient",
    "WriteThroughConnector",
    "WriteThroughMixin",
    "WriteThroughPort",
    "WriteThroughReactor",
    "WriteThroughServer",
    "applies",
    "internals_ok",
]

_log = Logger()

_PosixReactorBase: Any
try:
    from twisted.internet.posixbase import PosixReactorBase as _PosixReactorBase
except ImportError:  # pragma: no cover - Windows without posixbase
    _PosixReactorBase = None

# Attributes of tcp.Server that the fast path reads (each has a class-level
# default in Twisted, so a missing one means Twisted changed).
_TRANSPORT_ATTRIBUTES = (
    "connected",
    "disconnecting",
    "TLS",
    "producerPaused",
    "dataBuffer",
    "_writeDisconnecting",
    "_writeDisconnected",
    "_aborting",
)

if TYPE_CHECKING:  # the mixin is only ever combined with tcp.Server/Client
    _TransportBase = tcp.Connection
else:
    _TransportBase = object


class WriteThroughMixin(_TransportBase):
    """
    The write-through C{write}/C{writeSequence} and the larger reads, for a
    subclass of a Twisted TCP connection (L{WriteThroughServer},
    L{WriteThroughClient}): C{write} sends immediately when nothing is
    buffered.

    At most one immediate send per read: after one, further writes are
    buffered as Twisted does (and go out together on the next reactor
    iteration) until data is read or the buffer has been flushed.  A
    request/response exchange (one reply per request, or one request at a
    time) always writes through; a burst of writes in one turn (many
    requests in flight, a frame per write) costs one extra C{send()} over
    Twisted's coalescing, not one per write.

    Exactly one C{send()} of the whole chunk is tried (the kernel takes what
    fits; Twisted's C{SEND_LIMIT} cap exists for Windows), and only when: the
    data is C{bytes}; the transport is connected, not closing, not aborting,
    not half-closed, not using TLS; its producer is not paused; and both of
    Twisted's write buffers are empty.

    Connections get C{TCP_NODELAY} (as asyncio's do): a write that follows
    an immediate send must not wait for its ACK (Nagle), or a message split
    over several writes (an AMQP publish is three frames) stalls for the
    peer's delayed ACK.  C{setTcpNoDelay(False)} turns it off again.

    Whatever the kernel does not take (a partial send, C{EAGAIN}, any other
    socket error) goes through Twisted's C{write} unchanged: buffered, the
    producer paused if the buffer is full, C{EPOLLOUT} armed; a socket error
    is then reported by the reactor's next C{doWrite}, as it would have been.
    """

    readSize = 256 * 1024
    # an immediate send happened since the last read or flush
    _sentThrough = False

    def doRead(self) -> Any:
        """
        Read up to L{readSize} bytes (Twisted reads C{bufferSize}, 64 KiB;
        asyncio reads 256 KiB) and hand them to the protocol.  C{bufferSize}
        keeps its meaning: the write-buffer size above which the producer is
        paused.
        """
        try:
            data = self.socket.recv(self.readSize)
        except BlockingIOError:
            return None
        except OSError:
            return main.CONNECTION_LOST
        # tcp.Connection._dataReceived, inlined (hot path)
        if not data:
            return main.CONNECTION_DONE
        self._sentThrough = False
        self.protocol.dataReceived(data)
        return None

    def doWrite(self) -> Any:
        """
        Twisted's C{doWrite}; once the buffer is empty, the next C{write}
        may send immediately again.
        """
        result = super().doWrite()
        if not self.dataBuffer and not self._tempDataLen:
            self._sentThrough = False
        return result

    def write(self, data: bytes) -> None:
        """
        Send C{data} now if nothing is queued before it; queue the rest.
        """
        # nothing buffered: Twisted resets dataBuffer to b"" once it is all
        # sent (a non-empty one only sends us to the standard path)
        if (
            not self._sentThrough
            and not self._tempDataLen
            and not self.dataBuffer
            and type(data) is bytes
            and self.connected
            and not self.disconnecting
            and not self.producerPaused
            and not self.TLS
            and not self._writeDisconnecting
            and not self._writeDisconnected
            and not self._aborting
            and data
        ):
            self._sentThrough = True
            try:
                sent = self.socket.send(data)
            except OSError:
                # EAGAIN/ENOBUFS or an error: leave it all to doWrite, which
                # retries and reports a lost connection the standard way.
                sent = 0
            if sent == len(data):
                return
            if sent:
                data = data[sent:]
        super().write(data)

    def writeSequence(self, iovec: Any) -> None:
        """
        Like L{write} of the joined chunks when the fast path applies;
        otherwise Twisted's C{writeSequence}.
        """
        if (
            type(iovec) in (list, tuple)
            and iovec
            and not self._tempDataLen
            and not self.dataBuffer
            and not self.TLS
            and all(type(chunk) is bytes for chunk in iovec)
        ):
            self.write(b"".join(iovec))
            return
        super().writeSequence(iovec)


def _no_delay(sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        # not a TCP socket (a test double, say): nothing to do
        pass


class WriteThroughServer(WriteThroughMixin, tcp.Server):
    """
    A server-side TCP connection with L{WriteThroughMixin}'s write path.
    """

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        _no_delay(sock)
        super().__init__(sock, *args, **kwargs)


class WriteThroughClient(WriteThroughMixin, tcp.Client):
    """
    A client-side TCP connection with L{WriteThroughMixin}'s write path.
    Before the connection is made, C{connected} is false and every call is
    Twisted's own.
    """

    def createInternetSocket(self) -> Any:
        """
        Twisted's non-blocking socket, with C{TCP_NODELAY}.
        """
        sock = super().createInternetSocket()
        _no_delay(sock)
        return sock


class WriteThroughConnector(tcp.Connector):
    """
    A TCP connector whose connections are L{WriteThroughClient}s.
    """

    def _makeTransport(self) -> Any:
        return WriteThroughClient(self.host, self.port, self.bindAddress, self, self.reactor)


class WriteThroughPort(tcp.Port):
    """
    A listening TCP port whose connections are L{WriteThroughServer}s.
    """

    transport = WriteThroughServer


class WriteThroughReactor:
    """
    A proxy of a reactor whose C{listenTCP} listens with a
    L{WriteThroughPort} and whose C{connectTCP} connects with a
    L{WriteThroughConnector}; everything else (C{listenSSL},
    C{connectSSL}, UNIX sockets, timers, ...) is the wrapped reactor's own.

    Give it to C{serverFromString} (or to C{HostnameEndpoint},
    C{TCP4ClientEndpoint}, ...) so that TCP endpoints get write-through
    connections and every other kind stays standard.  It provides the same
    interfaces as the reactor it wraps.
    """

    def __init__(self, reactor: Any) -> None:
        """
        @param reactor: the reactor to wrap; see L{applies}.
        """
        self._reactor = reactor
        directlyProvides(self, providedBy(reactor))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def listenTCP(
        self,
        port: int,
        factory: IProtocolFactory,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        """
        Listen like C{PosixReactorBase.listenTCP}, with a L{WriteThroughPort}.
        """
        p = WriteThroughPort(port, factory, backlog, interface, self._reactor)
        p.startListening()
        return p

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float = 30.0,
        bindAddress: Any = None,
    ) -> Any:
        """
        Connect like C{PosixReactorBase.connectTCP}, with a
        L{WriteThroughConnector}.
        """
        c = WriteThroughConnector(host, port, factory, timeout, bindAddress, self._reactor)
        c.connect()
        return c


def internals_ok() -> bool:
    """
    @return: whether the Twisted internals this module relies on are as
        expected (see the module docstring).
    """
    if _PosixReactorBase is None:  # pragma: no cover - Windows without posixbase
        return False
    if tcp.Port.transport is not tcp.Server:
        return False
    if not hasattr(_PosixReactorBase, "listenTCP") or not hasattr(_PosixReactorBase, "connectTCP"):
        return False
    if not hasattr(tcp.Connector, "_makeTransport"):
        return False
    for cls in (tcp.Server, tcp.Client):
        if not all(hasattr(cls, name) for name in _TRANSPORT_ATTRIBUTES):
            return False
    probe = abstract.FileDescriptor.__new__(tcp.Server)
    null: Any = _NullReactor()
    try:
        abstract.FileDescriptor.__init__(probe, reactor=null)
        probe.connected = 1
        abstract.FileDescriptor.write(probe, b"abc")
        queued = probe._tempDataLen == 3 and probe._tempDataBuffer == [b"abc"]
        # once everything is sent, doWrite empties dataBuffer (the fast
        # path's "nothing buffered" test relies on it)
        probe.writeSomeData = len  # type: ignore[method-assign,assignment]
        abstract.FileDescriptor.doWrite(probe)
        return bool(queued and probe.dataBuffer == b"" and not probe._tempDataLen)
    except Exception:
        return False


class _NullReactor:
    """
    Just enough of a reactor for L{internals_ok}'s probe transport.
    """

    def addWriter(self, selectable: Any) -> None:
        pass

    def removeWriter(self, selectable: Any) -> None:
        pass


_checked: list[bool] = []


def applies(reactor: Any) -> bool:
    """
    @return: whether L{WriteThroughReactor} can serve C{reactor}: a
        C{PosixReactorBase} (epoll, poll, select, kqueue, asyncio-selector
        reactors) that does not override C{listenTCP}, with Twisted's
        internals as expected (a tested Twisted release, see
        L{txmsg.net._versions}).  False for IOCP and any other reactor, and
        for test doubles such as C{MemoryReactor}.
    """
    if _PosixReactorBase is None or not isinstance(reactor, _PosixReactorBase):
        return False
    if type(reactor).listenTCP is not _PosixReactorBase.listenTCP:
        return False
    if type(reactor).connectTCP is not _PosixReactorBase.connectTCP:
        return False
    if not _checked:
        _checked.append(_usable())
    return _checked[0]


def _usable() -> bool:
    """
    Whether this Twisted is one the fast path may run on; logs why not.
    """
    if not tested_twisted():
        _log.warn(
            "Twisted {version} is outside the releases txmsg's write-through "
            "transport was tested on ({tested}): using standard transports",
            version=twisted_version(),
            tested=tested_range_text(),
        )
        return False
    if not internals_ok():
        _log.warn(
            "Twisted {version}'s transport internals are not what txmsg's "
            "write-through path expects: using standard transports",
            version=twisted_version(),
        )
        return False
    return True
