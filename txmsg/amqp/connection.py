# -*- test-case-name: txmsg.test.test_amqp_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A reconnecting AMQP connection service on pika's Twisted adapter.

L{AMQPConnection} is an C{IService} built on L{ClientService} and
L{backoffPolicy} with C{prepareConnection=lambda p: p.ready}.  After every
(re)connect it declares its L{Topology}, then lets each I{participant}
(publishers, consumers, RPC clients; see L{txmsg.amqp.publisher},
L{txmsg.amqp.consumer}, L{txmsg.amqp.rpc}) rebuild its channel, C{basic_qos},
confirms and consumers.  C{amqp.connected} / C{amqp.lost} events carry the
real close reason (pika reports every close as C{ConnectionDone};
L{reason_preserving_protocol} fixes that).

pika's Twisted adapter installs the global reactor when imported, so it is only
imported inside functions here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._tls import AMQP_HINTS, describe_tls_failure
from txmsg.amqp._protocol import _Factory, describe_reason, reason_preserving_protocol
from txmsg.amqp.topology import Declaration, Topology
from txmsg.amqp.url import AMQPAddress, parse_amqp_url

__all__ = [
    "AMQPConnection",
    "NotConnectedError",
    "ServiceStopped",
    "describe_reason",
    "reason_preserving_protocol",
]


class NotConnectedError(Exception):
    """No AMQP connection became ready within the allowed time."""


class ServiceStopped(NotConnectedError):
    """The connection service is stopping or stopped."""


class AMQPConnection(Service):
    """
    A reconnecting connection to RabbitMQ that replays topology and
    participants after every reconnect.

    Participants are objects with C{_attach(connection) -> Deferred | None}
    (called with each new ready connection, after the topology), C{_detach(
    reason)} (called when it is lost), C{stop() -> Deferred} and an integer
    C{stop_order} (lower stops first: consumers, then RPC clients, then
    publishers).

    @ivar topology: the L{Topology} replayed on every connection.
    @ivar events: the event sink (C{dispatch(name, payload, source=...)}) or
        L{None}.
    """

    log = Logger()

    def __init__(
        self,
        url: str | None = None,
        *,
        reactor: Any = None,
        events: Any = None,
        connection_name: str | None = None,
        topology: Topology | None = None,
        retry_policy: Callable[[int], float] | None = None,
        endpoint: Any = None,
        tls_creator: Any = None,
        close_timeout: float = 10.0,
    ) -> None:
        """
        @param url: C{amqp://user:password@host:port/vhost} or C{amqps://...};
            default C{$TXMSG_AMQP_URL}, else C{amqp://guest:guest@127.0.0.1:5672/%2F}.
        @param reactor: the reactor (default: the global one, resolved late).
        @param events: the event sink for C{amqp.*} events, or L{None}.
        @param connection_name: the client-provided connection name (shown
            by C{rabbitmqctl list_connections}).
        @param topology: declarations to replay on every connection.
        @param retry_policy: C{ClientService} retry policy (default
            C{backoffPolicy(initialDelay=0.5, maxDelay=10.0)}).
        @param endpoint: an explicit client endpoint (default: built from the
            URL, with TLS for C{amqps}).
        @param tls_creator: TLS connection creator for C{amqps}.
        @param close_timeout: seconds to wait for the AMQP close handshake in
            L{stopService}.
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self._reactor = reactor
        self.address: AMQPAddress = parse_amqp_url(url)
        self.events = events
        self.connection_name = connection_name
        self.topology = topology if topology is not None else Topology()
        self._retry_policy = retry_policy
        self._endpoint = endpoint
        self._tls_creator = tls_creator
        self._close_timeout = close_timeout
        self._client_service: Any = None
        self._connection: Any = None
        self._ready = False
        self._generation = 0
        self._stopping = False
        self._waiters: list[Deferred] = []
        self._participants: list[Any] = []
        self._publisher: Any = None
        self._lost_waiters: list[Deferred] = []
        self._failure: str | None = None
        self._early_losses = 0

    # -- state --------------------------------------------------------------

    @property
    def reactor(self) -> Any:
        """The reactor this connection schedules on."""
        return self._reactor

    @property
    def connection(self) -> Any:
        """The current ready pika connection, or L{None}."""
        return self._connection if self._ready else None

    @property
    def generation(self) -> int:
        """How many connections have become ready so far."""
        return self._generation

    @property
    def stopping(self) -> bool:
        """Whether L{stopService} has begun (or the service never started)."""
        return self._stopping

    def when_ready(self, timeout: float | None = None) -> Deferred:
        """
        Wait for a ready connection (connected, topology declared).

        @param timeout: seconds to wait; L{None} waits until the service
            stops.
        @return: a Deferred firing with the pika connection, or failing with
            L{NotConnectedError} after C{timeout} or L{ServiceStopped}.
        """
        if self._stopping:
            return fail(ServiceStopped("AMQP connection service is stopped"))
        if self._ready:
            return succeed(self._connection)
        timer: list = []

        def cancel(d: Deferred) -> None:
            if d in self._waiters:
                self._waiters.remove(d)
            for t in timer:
                if t.active():
                    t.cancel()

        d: Deferred = Deferred(cancel)
        self._waiters.append(d)
        if timeout is not None:

            def expire() -> None:
                if d in self._waiters:
                    self._waiters.remove(d)
                    url = self.address.redacted
                    d.errback(NotConnectedError(f"no AMQP connection to {url} within {timeout}s"))

            timer.append(self._reactor.callLater(timeout, expire))
            d.addBoth(_cancel_timer, timer[0])
        return d

    # -- participants and topology -----------------------------------------

    def add_participant(self, participant: Any) -> None:
        """
        Register C{participant}; if a connection is ready it is attached now.
        """
        if participant in self._participants:
            return
        self._participants.append(participant)
        if self._ready:
            self._attach_one(participant, self._connection)

    def remove_participant(self, participant: Any) -> None:
        """Forget C{participant} (idempotent)."""
        if participant in self._participants:
            self._participants.remove(participant)

    def declare(self, *declarations: Declaration) -> Deferred:
        """
        Add declarations to the topology and, when connected, declare the new
        ones now.

        @return: a Deferred firing with the list of C{(declaration, Failure)}
            pairs that failed (empty on success).
        """
        new = self.topology.add(*declarations)
        if not self._ready or not new:
            return succeed([])
        return self.topology.declare(self.open_channel, new)

    def open_channel(self) -> Deferred:
        """
        Open a channel on the current connection.

        @return: a Deferred firing with a C{TwistedChannel}; it fails (never
            raises) if there is no open connection.
        """
        conn = self._connection
        if conn is None:
            return fail(NotConnectedError("not connected"))
        return maybeDeferred(conn.channel)

    # -- convenience --------------------------------------------------------

    def publisher(self) -> Any:
        """The default L{txmsg.amqp.publisher.Publisher} of this connection."""
        if self._publisher is None:
            from txmsg.amqp.publisher import Publisher

            self._publisher = Publisher(self)
        return self._publisher

    def publish(self, exchange: str, routing_key: str, body: Any, **kw: Any) -> Deferred:
        """
        Publish with the default publisher; see
        L{txmsg.amqp.publisher.Publisher.publish}.
        """
        return self.publisher().publish(exchange, routing_key, body, **kw)

    def consume(self, queue: Any, handler: Any = None, prefetch: int = 1, **kw: Any) -> Any:
        """
        Start consuming; see L{txmsg.amqp.consumer.Consumer}.

        @return: the L{txmsg.amqp.consumer.Consumer}.
        """
        from txmsg.amqp.consumer import Consumer

        return Consumer(self, queue, handler, prefetch=prefetch, **kw)

    # -- IService -----------------------------------------------------------

    def startService(self) -> None:
        """Start connecting (and reconnecting) to the broker."""
        from twisted.application.internet import ClientService, backoffPolicy

        super().startService()
        self._stopping = False
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = self.address.endpoint(self._reactor, self._tls_creator)
        policy = self._retry_policy or backoffPolicy(initialDelay=0.5, maxDelay=10.0)
        self._early_losses = 0

        def retry_delay(attempt: int) -> float:
            # ClientService counts an attempt that connected as a success;
            # one lost before it was ready must still back off.
            return policy(max(attempt, self._early_losses))

        self.log.info("Connecting to AMQP broker {url}", url=self.address.redacted)
        self._client_service = ClientService(
            endpoint,
            _Factory(self),
            retryPolicy=retry_delay,
            clock=self._reactor,
            prepareConnection=_prepare,
        )
        self._client_service.startService()

    def stopService(self) -> Deferred:
        """
        Stop cleanly: stop participants (consumers stop intake and wait for
        their handlers and acks, publishers for their confirms), close the
        AMQP connection (acks flushed, unacked deliveries requeued), then
        stop the L{ClientService}.
        """
        super().stopService()
        self._stopping = True
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.errback(ServiceStopped("AMQP connection service stopped"))
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        for p in sorted(self._participants, key=lambda p: getattr(p, "stop_order", 0)):
            try:
                await maybeDeferred(p.stop)
            except Exception:
                self.log.failure("Stopping {participant!r} failed", participant=p)
        conn = self._connection
        if conn is not None and conn.is_open:
            d: Deferred = Deferred()
            self._lost_waiters.append(d)
            timer = self._reactor.callLater(self._close_timeout, d.callback, None)
            d.addBoth(_cancel_timer, timer)
            try:
                conn.close()
            except Exception:
                self.log.failure("Closing the AMQP connection failed")
                if not d.called:
                    d.callback(None)
            await d
        if self._client_service is not None:
            await maybeDeferred(self._client_service.stopService)

    # -- protocol callbacks (ReasonPreservingConnection or test fakes) ------

    def _protocol_ready(self, conn: Any) -> None:
        if self._stopping:
            conn.close()
            return
        self._connection = conn
        self._failure = None
        self._early_losses = 0
        self._generation += 1
        generation = self._generation
        self._watch_blocked(conn)
        payload = self._payload(generation=generation)
        self.log.info(
            "AMQP connection {generation} to {url} is open",
            generation=generation,
            url=self.address.redacted,
        )
        self._emit("amqp.connected", payload)
        d = self.topology.declare(self.open_channel)
        d.addCallback(self._topology_declared, conn, generation)
        d.addErrback(self._setup_failed, conn)

    def _attempt_failed(self, reason: Failure) -> None:
        """
        A connection attempt was lost before it was ready.  When the cause is
        one the user must fix (a TLS verification failure, a missing client
        certificate), log it once (again only when it changes) and fail the
        pending L{when_ready} calls with it now rather than at their
        timeout; the service keeps retrying with backoff.
        """
        self._early_losses += 1
        message = describe_tls_failure(reason, self.address.redacted, AMQP_HINTS)
        if message is None or self._stopping:
            return
        if message != self._failure:
            self.log.error("AMQP connection failed: {reason}", reason=message)
        self._failure = message
        # Next turn: ClientService has yet to hear of this loss, and a waiter
        # may stop the service at once.
        self._reactor.callLater(0, self._fail_waiters, message)

    def _fail_waiters(self, message: str) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.errback(NotConnectedError(message))

    def _topology_declared(self, failures: list, conn: Any, generation: int) -> None:
        if conn is not self._connection or generation != self._generation:
            return
        for item, _ in failures:
            self._emit("amqp.topology_failed", self._payload(declaration=repr(item)))
        self._ready = True
        for p in list(self._participants):
            self._attach_one(p, conn)
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.callback(conn)

    def _setup_failed(self, f: Failure, conn: Any) -> None:
        if conn is self._connection:
            self.log.failure("Setting up the AMQP connection failed", f)

    def _attach_one(self, participant: Any, conn: Any) -> None:
        d = maybeDeferred(participant._attach, conn)
        d.addErrback(
            lambda f: self.log.failure(
                "Attaching {participant!r} failed", f, participant=participant
            )
        )

    def _protocol_lost(self, conn: Any, reason: Failure) -> None:
        if conn is not self._connection:
            return
        self._connection = None
        self._ready = False
        self.topology.forget_server_names()
        fields = describe_reason(reason)
        self.log.info(
            "AMQP connection to {url} lost: {reason_type}: {reason}",
            url=self.address.redacted,
            **fields,
        )
        for p in list(self._participants):
            try:
                p._detach(reason)
            except Exception:
                self.log.failure("Detaching {participant!r} failed", participant=p)
        self._emit("amqp.lost", self._payload(**fields))
        waiters, self._lost_waiters = self._lost_waiters, []
        for w in waiters:
            if not w.called:
                w.callback(None)

    # -- helpers ------------------------------------------------------------

    def _watch_blocked(self, conn: Any) -> None:
        impl = getattr(conn, "_impl", None)
        if impl is None or not hasattr(impl, "add_on_connection_blocked_callback"):
            return

        def blocked(_conn: Any, frame: Any) -> None:
            reason = getattr(getattr(frame, "method", None), "reason", None)
            self.log.warn("AMQP broker blocked the connection: {reason}", reason=reason)
            self._emit("amqp.blocked", self._payload(reason=reason))

        def unblocked(_conn: Any, frame: Any) -> None:
            self.log.info("AMQP broker unblocked the connection")
            self._emit("amqp.unblocked", self._payload())

        impl.add_on_connection_blocked_callback(blocked)
        impl.add_on_connection_unblocked_callback(unblocked)

    def _payload(self, **fields: Any) -> dict:
        payload = {
            "url": self.address.redacted,
            "host": self.address.host,
            "port": self.address.port,
            "connection_name": self.connection_name,
        }
        payload.update(fields)
        return payload

    def _emit(self, name: str, payload: dict) -> None:
        if self.events is None:
            return
        d = maybeDeferred(self.events.dispatch, name, payload, source="txmsg.amqp")
        d.addErrback(lambda f: self.log.failure("Event {name} failed", f, name=name))


def _prepare(protocol: Any) -> Deferred:
    """
    C{ClientService}'s C{prepareConnection}: wait until pika's connection is
    open.  When it is lost (or refused) before that, C{ready} fails; the
    failure is dropped here, because a failed C{prepareConnection} moves
    C{ClientService} to waiting while the connection's own loss is still to
    be reported, which it cannot handle (automat C{NoTransition} tracebacks
    on every attempt).  The loss alone makes it retry, and the owner learns
    why through C{_attempt_failed}.
    """
    return protocol.ready.addErrback(lambda _: None)


def _cancel_timer(result: Any, timer: Any) -> Any:
    if timer.active():
        timer.cancel()
    return result
