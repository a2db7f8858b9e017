# -*- test-case-name: txmsg.test.test_amqp_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A reconnecting AMQP connection service on pika's Twisted adapter.

L{AMQPConnection} is an C{IService} built on L{ClientService} and
L{backoffPolicy}; a set-up the user must fix (a refused login, a failed TLS
handshake; see L{txmsg.amqp._setup_failure}) is named once.  After every
(re)connect it declares its L{Topology}, then lets each I{participant}
(publishers, consumers, RPC clients; see L{txmsg.amqp.publisher},
L{txmsg.amqp.consumer}, L{txmsg.amqp.rpc}) rebuild its channel, C{basic_qos},
confirms and consumers.  C{amqp.connected} / C{amqp.lost} events carry the
real close reason (pika reports every close as C{ConnectionDone};
L{reason_preserving_protocol} fixes that).

pika's Twisted adapter installs the global reactor when imported, so only
L{txmsg.amqp._protocol} imports it, on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    fail,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg._reactor import maybe_global_reactor
from txmsg._sink import send_event
from txmsg._waiters import Waiters
from txmsg.amqp._participants import stop_participant
from txmsg.amqp._protocol import (
    _Factory,
    describe_reason,
    prepare_connection,
    reason_preserving_protocol,
    watch_blocked,
)
from txmsg.amqp._setup_failure import (
    AMQPConnectionFailed,
    LoginRefused,
    NotConnectedError,
    ServiceStopped,
    describe_setup_failure,
)
from txmsg.amqp.consumer import Consumer
from txmsg.amqp.hosts import HostList, parse_amqp_urls
from txmsg.amqp.publisher import Publisher
from txmsg.amqp.reply import ReplySender
from txmsg.amqp.topology import Declaration, Topology
from txmsg.amqp.url import AMQPAddress
from txmsg.events import IEventSink

__all__ = [
    "AMQPConnection",
    "AMQPConnectionFailed",
    "LoginRefused",
    "NotConnectedError",
    "ServiceStopped",
    "describe_reason",
    "reason_preserving_protocol",
]


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
        reactor: IReactorTime | None = None,
        events: IEventSink | None = None,
        connection_name: str | None = None,
        topology: Topology | None = None,
        retry_policy: Callable[[int], float] | None = None,
        endpoint: IStreamClientEndpoint | None = None,
        tls_creator: IOpenSSLClientConnectionCreator | None = None,
        close_timeout: float = 10.0,
        retry_refused_login: bool = False,
        shuffle_hosts: bool = False,
    ) -> None:
        """
        @param url: C{amqp://user:password@host:port/vhost} or C{amqps://...};
            default C{$TXMSG_AMQP_URL}, else C{amqp://guest:guest@127.0.0.1:5672/%2F}.
            Several URLs (the nodes of a cluster), separated by commas, make
            the connection move to the next node when one is lost or
            refuses (see L{txmsg.amqp.hosts}).
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
        @param retry_refused_login: when a set-up fails for a reason the
            user must fix (RabbitMQ refuses the login or the vhost, the TLS
            handshake fails), keep L{when_ready} waiting and keep retrying
            (with backoff) instead of failing it at once and, for a refused
            login, giving up; either way the reason is logged once and kept
            in L{setup_failure}.
        @param shuffle_hosts: with several URLs, try them in a random order
            rather than the order given.
        """
        self._reactor = reactor = maybe_global_reactor(reactor)
        #: the brokers (several for a cluster) and the one in use
        self.hosts = HostList(parse_amqp_urls(url), shuffle=shuffle_hosts)
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
        self._ready_waiters: Waiters[Any] = Waiters(reactor)
        self._participants: list[Any] = []
        self._publisher: Any = None
        self._lost_waiters: Waiters[None] = Waiters(reactor)
        self.retry_refused_login = retry_refused_login
        #: why the last connection set-up failed, when the user must fix it
        #: (see L{AMQPConnectionFailed}); None once a connection is ready
        self.setup_failure: AMQPConnectionFailed | None = None
        self._refusal_observers: list[Callable[[str], object]] = []
        self._setup_failures = 0
        self._replies: ReplySender | None = None

    # -- state --------------------------------------------------------------

    @property
    def address(self) -> AMQPAddress:
        """The address of the broker in use (or tried next)."""
        return self.hosts.current

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
            L{NotConnectedError} after C{timeout}, L{ServiceStopped}, or at
            once with L{AMQPConnectionFailed} (L{LoginRefused}) while the
            last set-up failed for a reason the user must fix.
        """
        if self._stopping:
            return fail(ServiceStopped("AMQP connection service is stopped"))
        if self._ready:
            return succeed(self._connection)
        url = self.address.redacted
        failure = self.setup_failure
        if failure is not None and not self.retry_refused_login:
            return fail(type(failure)(str(failure)))
        return self._ready_waiters.wait(
            timeout, lambda: NotConnectedError(f"no AMQP connection to {url} within {timeout}s")
        )

    @property
    def refusal(self) -> str | None:
        """Why RabbitMQ refused the last login or vhost (one line), or L{None}."""
        failure = self.setup_failure
        return str(failure) if isinstance(failure, LoginRefused) else None

    def add_refusal_observer(self, observer: Callable[[str], object]) -> None:
        """
        Call C{observer} with the one-line reason each time the connection
        gives up because RabbitMQ refused the login or vhost (see
        L{LoginRefused}; never with L{retry_refused_login}).
        """
        self._refusal_observers.append(observer)

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

    def publisher(self) -> Publisher:
        """The default L{txmsg.amqp.publisher.Publisher} of this connection."""
        if self._publisher is None:
            self._publisher = Publisher(self)
        return self._publisher

    def replies(self) -> ReplySender:
        """
        The L{txmsg.amqp.reply.ReplySender} of this connection: RPC replies
        through the default publisher, warning only about lost ones.
        """
        if self._replies is None:
            self._replies = ReplySender(self)
        return self._replies

    def publish(self, exchange: str, routing_key: str, body: Any, **kw: Any) -> Deferred:
        """
        Publish with the default publisher; see
        L{txmsg.amqp.publisher.Publisher.publish}.
        """
        return self.publisher().publish(exchange, routing_key, body, **kw)

    def consume(self, queue: Any, handler: Any = None, prefetch: int = 1, **kw: Any) -> Consumer:
        """
        Start consuming; see L{txmsg.amqp.consumer.Consumer}.

        @return: the L{txmsg.amqp.consumer.Consumer}.
        """
        return Consumer(self, queue, handler, prefetch=prefetch, **kw)

    # -- IService -----------------------------------------------------------

    def startService(self) -> None:
        """Start connecting (and reconnecting) to the broker."""
        super().startService()
        self._stopping = False
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = self.hosts.endpoint(
                cast(IReactorTCP, self._reactor), self._tls_creator
            )  # a reactor that connects provides IReactorTCP too (see txmsg._reactor)
        policy = self._retry_policy or backoffPolicy(initialDelay=0.5, maxDelay=10.0)
        self.log.info(
            "Connecting to AMQP broker {url}",
            url=", ".join(a.redacted for a in self.hosts.addresses),
        )
        self._client_service = ClientService(
            endpoint,
            _Factory(self),
            # ClientService counts an attempt that connected as a success (and
            # starts counting again); one whose AMQP set-up failed must still
            # back off further.
            retryPolicy=lambda attempts: policy(max(attempts, self._setup_failures)),
            clock=self._reactor,
            prepareConnection=prepare_connection,
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
        self._ready_waiters.fail(ServiceStopped("AMQP connection service stopped"))
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        for p in sorted(self._participants, key=lambda p: getattr(p, "stop_order", 0)):
            await stop_participant(p, self._reactor, self._close_timeout, self.log)
        conn = self._connection
        if conn is not None and conn.is_open:
            d = self._lost_waiters.wait(self._close_timeout)
            try:
                conn.close()
            except Exception:
                self.log.failure("Closing the AMQP connection failed")
                d.cancel()
            try:
                await d
            except (CancelledError, TimeoutError):
                pass
        if self._client_service is not None:
            await maybeDeferred(self._client_service.stopService)

    # -- protocol callbacks (ReasonPreservingConnection or test fakes) ------

    def _protocol_ready(self, conn: Any) -> None:
        if self._stopping:
            conn.close()
            return
        self._connection = conn
        self._setup_failures = 0
        self.setup_failure = None
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

    def _protocol_failed(self, conn: Any, error: BaseException) -> None:
        """
        pika could not set up a connection (refused, lost, TLS handshake
        failed).  Every such attempt counts for the retry delay.  When the
        user must fix the cause (see L{describe_setup_failure}), it is logged
        once (again only when it changes) and reported on the next turn.
        """
        self._setup_failures += 1
        address = self.address
        failure = describe_setup_failure(error, address)
        # A node that accepts TCP but fails the AMQP set-up may be booting
        # or shutting down: the next attempt starts with the next node.
        self.hosts.advance()
        if failure is None or self._stopping:
            self.log.info(
                "AMQP connection set-up at {url} failed: {reason_type}: {reason}",
                url=address.redacted,
                **describe_reason(error),
            )
            return
        reason = str(failure)
        if self.setup_failure is None or str(self.setup_failure) != reason:
            self.log.error("AMQP connection failed: {reason}", reason=reason)
        self.setup_failure = failure
        self._emit("amqp.setup_failed", self._payload(reason=reason, error=type(failure).__name__))
        # Not from inside pika's callback: ClientService is still waiting for
        # prepareConnection, and stopping it now would break its state machine.
        self._reactor.callLater(0, self._report_setup_failure, failure)

    def _report_setup_failure(self, failure: AMQPConnectionFailed) -> None:
        """
        Unless asked to retry (L{retry_refused_login}), fail the L{when_ready}
        calls now and, for a refused login, stop retrying and tell the refusal
        observers (a TLS failure is retried: the certificate may be replaced).
        """
        if self.retry_refused_login or self._stopping:
            return
        self._ready_waiters.fail(failure)
        if isinstance(failure, LoginRefused):
            if self._client_service is not None:
                self._client_service.stopService()
            for observer in list(self._refusal_observers):
                observer(str(failure))

    def _topology_declared(self, failures: list, conn: Any, generation: int) -> None:
        if conn is not self._connection or generation != self._generation:
            return
        for item, _ in failures:
            self._emit("amqp.topology_failed", self._payload(declaration=repr(item)))
        self._ready = True
        for p in list(self._participants):
            self._attach_one(p, conn)
        self._ready_waiters.fire(conn)

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
        self._lost_waiters.fire(None)

    # -- helpers ------------------------------------------------------------

    def _watch_blocked(self, conn: Any) -> None:
        def blocked(reason: str | None) -> None:
            self.log.warn("AMQP broker blocked the connection: {reason}", reason=reason)
            self._emit("amqp.blocked", self._payload(reason=reason))

        def unblocked() -> None:
            self.log.info("AMQP broker unblocked the connection")
            self._emit("amqp.unblocked", self._payload())

        watch_blocked(conn, blocked, unblocked)

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
        send_event(self.events, name, payload, "txmsg.amqp", self.log)
