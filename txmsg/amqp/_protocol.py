# -*- test-case-name: txmsg.test.test_amqp_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The pika protocol used by L{txmsg.amqp.connection.AMQPConnection}: a
C{TwistedProtocolConnection} that keeps the real close reason and coalesces
its writes (L{CoalescingWriter}), built lazily because importing pika's
Twisted adapter installs the global reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

_log = Logger()


def describe_reason(reason: Any) -> dict:
    """
    Describe a close reason (exception or L{Failure}) as plain fields.

    @return: C{{"reason": str, "reason_type": "module.Class",
        "reply_code": int | None, "reply_text": str | None}}.
    """
    value = reason.value if isinstance(reason, Failure) else reason
    cls = type(value)
    return {
        "reason": str(value) or cls.__name__,
        "reason_type": f"{cls.__module__}.{cls.__qualname__}",
        "reply_code": getattr(value, "reply_code", None),
        "reply_text": getattr(value, "reply_text", None),
    }


class CoalescingWriter:
    """
    The transport pika's connection writes to: what pika writes while the
    writer is held reaches the real transport as one C{write} when the
    outermost hold is released.

    pika writes every frame separately (a publish is three: method, header,
    body; an ack is one).  On Twisted's standard transport they are
    coalesced, but only one reactor iteration later, after two
    C{epoll_ctl} calls; on txmsg's write-through transport the first frame
    would be a C{send()} of its own and the rest of the message would wait
    for the next iteration.  The protocol holds the writer while it handles
    a read (the acks and replies that the deliveries and confirms in it
    cause go out together at its end) and while pika outputs one message's
    frames (a publish from a timer or a task's callback is one write, at
    once).  Order is kept: everything goes through one list.
    """

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self._held = 0
        self._pending: list[bytes] = []

    def hold(self) -> None:
        """
        Queue writes until the matching L{release}.
        """
        self._held += 1

    def release(self) -> None:
        """
        End one L{hold}; the outermost one hands what is queued over.
        """
        self._held -= 1
        if not self._held:
            self.flush()

    def write(self, data: bytes) -> None:
        """
        Write C{data}, or queue it while held.
        """
        self._pending.append(data)
        if not self._held:
            self.flush()

    def flush(self) -> None:
        """
        Hand what is queued to the transport, as one write.
        """
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self.transport.write(data)

    def loseConnection(self) -> None:
        """
        Flush, then close the transport.
        """
        self.flush()
        self.transport.loseConnection()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@contextmanager
def one_write(writer: CoalescingWriter | None) -> Iterator[None]:
    """
    Hold C{writer} (if any) for the block: what pika writes in it reaches
    the transport as one write at its end.
    """
    if writer is None:
        yield
        return
    writer.hold()
    try:
        yield
    finally:
        writer.release()


_protocol_class: Any = None


def reason_preserving_protocol() -> type:
    """
    Return (building it on first use) C{ReasonPreservingConnection}: a
    C{TwistedProtocolConnection} that

      - reports the close reason pika recorded (C{ConnectionClosedByBroker(320,
        ...)}, C{ConnectionClosedByClient(200, ...)}, C{ConnectionBlockedTimeout})
        instead of Twisted's C{ConnectionDone} (docs/design.md, "pika's Twisted adapter");
      - reads what the broker sends with L{txmsg.amqp._frame_reader.read_frames}
        once the connection is open (deliveries on a short path);
      - tells its C{owner} (an L{AMQPConnection}) when it is ready, when its
        set-up failed (with pika's reason, e.g. C{ConnectionClosedByBroker(403,
        "ACCESS_REFUSED ...")}) and when it is lost.
    """
    global _protocol_class
    if _protocol_class is None:
        # pika's Twisted adapter installs the global reactor when imported
        from pika.adapters.twisted_connection import TwistedProtocolConnection

        from txmsg.amqp._frame_reader import read_frames

        class ReasonPreservingConnection(TwistedProtocolConnection):
            owner: Any = None
            writer: CoalescingWriter | None = None

            def makeConnection(self, transport: Any) -> None:
                writer = self.writer = CoalescingWriter(transport)
                impl = self._impl
                output = impl._output_marshaled_frames  # one message's frames

                def output_held(frames: Any) -> None:
                    writer.hold()
                    try:
                        output(frames)
                    finally:
                        writer.release()

                impl._output_marshaled_frames = output_held
                impl.connection_made(writer)
                Protocol.makeConnection(self, transport)

            def dataReceived(self, data: bytes) -> None:
                impl = self._impl
                writer = self.writer
                if writer is not None:
                    writer.hold()
                try:
                    if impl.is_open:
                        read_frames(impl, data)  # deliveries on the short path
                    else:
                        impl.data_received(data)
                finally:
                    if writer is not None:
                        writer.release()

            def connectionReady(self) -> Any:
                if self.owner is not None:
                    try:
                        self.owner._protocol_ready(self)
                    except Exception:
                        _log.failure("AMQP connection setup failed")
                return self

            def _on_connection_failed(self, connection: Any, error: Any = None) -> None:
                # pika replaces the reason (ACCESS_REFUSED, ...) by a bare
                # AMQPConnectionError when it fails `ready`: hand it over first.
                if self.owner is not None and error is not None:
                    try:
                        self.owner._protocol_failed(self, error)
                    except Exception:
                        _log.failure("Reporting the AMQP set-up failure failed")
                super()._on_connection_failed(connection, error)

            def connectionLost(self, reason: Any = None) -> None:
                pending = getattr(self._impl, "_error", None)
                if reason is not None and reason.check(ConnectionDone) and pending is not None:
                    reason = Failure(pending)
                was_open = self.ready is None
                super().connectionLost(reason)
                if self.owner is not None and was_open:
                    self.owner._protocol_lost(self, reason)

        _protocol_class = ReasonPreservingConnection
    return _protocol_class


@implementer(IProtocolFactory)
class _Factory:
    """A minimal client factory building owned reason-preserving protocols."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass

    def buildProtocol(self, addr: IAddress) -> Any:
        owner = self._owner
        proto = reason_preserving_protocol()(
            owner.address.parameters(owner.connection_name),
            custom_reactor=owner._reactor,
        )
        proto.owner = owner
        proto.factory = self
        return proto


def prepare_connection(protocol: Any) -> Deferred:
    """
    C{ClientService}'s C{prepareConnection}: wait until pika's connection is
    open.  When it is lost (or refused) before that, C{ready} fails; the
    failure is dropped here, because a failed C{prepareConnection} moves
    C{ClientService} to waiting while the connection's own loss is still to
    be reported, which it cannot handle (automat C{NoTransition} tracebacks
    on every attempt).  The loss alone makes it retry, and the owner learns
    why through C{_protocol_failed}.
    """
    return cast(Deferred, protocol.ready).addErrback(lambda _: None)


def watch_blocked(
    conn: Any, blocked: Callable[[str | None], None], unblocked: Callable[[], None]
) -> None:
    """
    Call C{blocked(reason)} when the broker blocks pika connection C{conn}
    (a resource alarm) and C{unblocked()} when it lifts the block.
    """
    impl = getattr(conn, "_impl", None)
    if impl is None or not hasattr(impl, "add_on_connection_blocked_callback"):
        return
    impl.add_on_connection_blocked_callback(
        lambda _conn, frame: blocked(getattr(getattr(frame, "method", None), "reason", None))
    )
    impl.add_on_connection_unblocked_callback(lambda _conn, frame: unblocked())
