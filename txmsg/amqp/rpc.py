# -*- test-case-name: txmsg.test.test_amqp_rpc -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
RPC over AMQP: C{reply_to} + C{correlation_id}, as in the seeds'
C{rpc_client.py} / C{rpc_server.py} (so each side interoperates with the
seed's blocking-pika counterpart).

L{RPCClient.call} publishes a request and fires with the reply body.  Replies
arrive through RabbitMQ's direct reply-to (C{amq.rabbitmq.reply-to}, the
default) or an exclusive server-named reply queue, recreated after every
reconnect.  Late or unknown replies are discarded with a log line; timeouts
and cancellation forget the call; pending calls fail with L{RPCLost} when the
connection or channel is lost (a reply can no longer reach them).

L{RPCServer} consumes a request queue and answers each request to its
C{reply_to} with the same C{correlation_id}, acking the request only after
the reply was confirmed.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pika.exceptions import UnroutableError
from twisted.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.amqp._protocol import describe_reason
from txmsg.amqp.consumer import AckWith, Consumer, Delivery, DropMessage, Publish
from txmsg.amqp.properties import make_properties
from txmsg.amqp.publisher import PublishReturned
from txmsg.amqp.reply import is_direct_reply_to
from txmsg.amqp.reply_to import reply_to_problem
from txmsg.amqp.topology import Queue

if TYPE_CHECKING:  # a type only: connection.py imports this module
    from txmsg.amqp.connection import AMQPConnection

__all__ = [
    "DIRECT_REPLY_TO",
    "RPCClient",
    "RPCError",
    "RPCLost",
    "RPCServer",
    "RPCTimeout",
    "RPCUnroutable",
]

#: RabbitMQ's pseudo-queue for direct reply-to.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"

_DEFAULT: Any = object()


class RPCError(Exception):
    """Base class of RPC call failures."""


class RPCTimeout(RPCError):
    """No reply within the call's timeout."""


class RPCLost(RPCError):
    """The connection or channel was lost while the call was pending."""


class RPCUnroutable(RPCError):
    """The request could not be routed: no queue is bound for that key."""


class _Call:
    __slots__ = ("corr", "result", "timer", "args")

    def __init__(self, corr: str, args: tuple) -> None:
        self.corr = corr
        self.args = args
        self.result: Deferred = Deferred()
        self.timer: Any = None


class RPCClient:
    """
    Call remote procedures over AMQP.

    @ivar reply_queue: L{DIRECT_REPLY_TO}, or a server-named exclusive queue.
    """

    log = Logger()
    stop_order = 1

    def __init__(
        self,
        connection: AMQPConnection,
        *,
        exchange: str = "",
        direct_reply_to: bool = True,
        timeout: float | None = 30.0,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param connection: the L{txmsg.amqp.connection.AMQPConnection}.
        @param exchange: the exchange requests are published to (default
            exchange: routing key = request queue name).
        @param direct_reply_to: use C{amq.rabbitmq.reply-to}; otherwise an
            exclusive server-named queue, recreated after every reconnect.
        @param timeout: default call timeout in seconds.
        """
        self._conn = connection
        self._clock = clock if clock is not None else connection.reactor
        self._exchange = exchange
        self._direct = direct_reply_to
        self._timeout = timeout
        self._pending: dict[str, _Call] = {}
        self._waiting: list[_Call] = []
        self._channel: Any = None
        self._reply_to: str | None = None
        self._starting = False
        self._stopped = False
        self.discarded = 0
        connection.add_participant(self)

    @property
    def reply_to(self) -> str | None:
        """The current reply address, or L{None} while not connected."""
        return self._reply_to

    def call(
        self,
        routing_key: str,
        body: bytes | str,
        timeout: float | None = _DEFAULT,
        *,
        exchange: str | None = None,
        **property_fields: Any,
    ) -> Deferred:
        """
        Send a request and wait for its reply.

        @param routing_key: where to send it (the server's queue name when
            using the default exchange).
        @param body: the request body (C{str} is UTF-8 encoded).
        @param timeout: seconds (default: the client's); L{None}: no limit.
        @param property_fields: more message properties (C{content_type},
            C{headers}, ...).
        @return: a Deferred firing with the reply body (bytes), failing with
            L{RPCTimeout}, L{RPCLost}, L{RPCUnroutable}; cancelling it
            forgets the call (a late reply is then discarded).
        """
        if self._stopped:
            return fail(RPCLost("the RPC client is stopped"))
        if isinstance(body, str):
            body = body.encode("utf-8")
        exchange = self._exchange if exchange is None else exchange
        call = _Call(uuid.uuid4().hex, (exchange, routing_key, body, property_fields))
        call.result = Deferred(lambda _: self._forget(call))
        if timeout is _DEFAULT:
            timeout = self._timeout
        if timeout is not None:
            call.timer = self._clock.callLater(timeout, self._expire, call, timeout)
        if self._channel is not None and self._channel.is_open:
            self._send(call)
        else:
            self._waiting.append(call)
        return call.result

    def _send(self, call: _Call) -> None:
        exchange, routing_key, body, fields = call.args
        props = make_properties(
            persistent=False,
            correlation_id=call.corr,
            reply_to=self._reply_to,
            **fields,
        )
        self._pending[call.corr] = call
        channel = self._channel
        d = maybeDeferred(channel.basic_publish, exchange, routing_key, body, props, True)
        d.addErrback(self._publish_failed, call)

    def _publish_failed(self, f: Failure, call: _Call) -> None:

        if f.check(UnroutableError):
            err: RPCError = RPCUnroutable(
                "no queue for RPC request to {!r} {!r}".format(*call.args[:2])
            )
        else:
            err = RPCLost("RPC request lost: {}".format(describe_reason(f)["reason"]))
        self._finish(call, err)

    def _expire(self, call: _Call, timeout: float) -> None:
        call.timer = None
        self._finish(
            call,
            RPCTimeout(f"no reply to RPC {call.args[1]!r} within {timeout}s"),
        )

    def _finish(self, call: _Call, outcome: Any) -> None:
        self._forget(call)
        if call.result.called:
            return
        if isinstance(outcome, Exception):
            call.result.errback(outcome)
        else:
            call.result.callback(outcome)

    def _forget(self, call: _Call) -> None:
        self._pending.pop(call.corr, None)
        if call in self._waiting:
            self._waiting.remove(call)
        if call.timer is not None:
            timer, call.timer = call.timer, None
            if timer.active():
                timer.cancel()

    # -- replies --------------------------------------------------------------

    def _reply(self, msg: Any) -> None:
        corr = msg.properties.correlation_id
        call = self._pending.get(corr)
        if call is None:
            self.discarded += 1
            self.log.info(
                "Discarding RPC reply with unknown or expired correlation_id {corr!r}",
                corr=corr,
            )
            return
        self._finish(call, msg.body)

    def _read(self, queue: Any, channel: Any) -> None:
        def got(msg: Any) -> None:
            self._reply(msg)
            if channel is self._channel:
                self._read(queue, channel)

        d = queue.get()
        d.addCallbacks(got, lambda f: None)

    # -- participant ----------------------------------------------------------

    def _attach(self, conn: Any) -> Deferred | None:
        if self._stopped or self._starting or self._channel is not None:
            return None
        self._starting = True
        d = Deferred.fromCoroutine(self._start(conn))

        def done(result: Any) -> Any:
            self._starting = False
            return result

        return d.addBoth(done)

    async def _start(self, conn: Any) -> None:
        channel = await self._conn.open_channel()
        if self._direct:
            reply_to = DIRECT_REPLY_TO
        else:
            frame = await channel.queue_declare(
                queue="", exclusive=True, auto_delete=True, durable=False
            )
            reply_to = frame.method.queue
        queue, _tag = await channel.basic_consume(reply_to, auto_ack=True)
        await channel.confirm_delivery()
        if self._stopped or conn is not self._conn.connection:
            channel.close()
            return
        self._channel = channel
        self._reply_to = reply_to
        channel.on_closed.addCallback(self._channel_closed, channel, conn)
        self._read(queue, channel)
        waiting, self._waiting = self._waiting, []
        for call in waiting:
            if not call.result.called:
                self._send(call)

    def _channel_closed(self, reason: Any, channel: Any, conn: Any) -> None:
        if channel is not self._channel:
            return
        self._lose(reason)
        if not self._stopped and conn is self._conn.connection and conn.is_open:
            self._attach(conn)

    def _detach(self, reason: Any) -> None:
        self._lose(reason)

    def _lose(self, reason: Any) -> None:
        self._channel = None
        self._reply_to = None
        pending = list(self._pending.values())
        for call in pending:
            self._finish(
                call,
                RPCLost(
                    "connection lost while waiting for the reply: {}".format(
                        describe_reason(reason)["reason"]
                    )
                ),
            )

    def stop(self) -> Deferred:
        """Fail every waiting or pending call with L{RPCLost} and close the channel."""
        self._stopped = True
        self._conn.remove_participant(self)
        for call in list(self._waiting) + list(self._pending.values()):
            self._finish(call, RPCLost("the RPC client stopped"))
        channel, self._channel = self._channel, None
        if channel is not None and channel.is_open:
            closed = channel.on_closed
            channel.close()
            return closed.addCallback(lambda _: None)
        return succeed(None)


class RPCServer:
    """
    Answer RPC requests from a queue.

    The handler gets a L{Delivery} and returns the reply body (bytes or
    str; a value, Deferred or coroutine).  The reply goes to the request's
    C{reply_to} with its C{correlation_id} through the default exchange,
    and the request is acked once the reply is confirmed.  A request whose
    client has gone (reply returned as unroutable) is dropped.

    With C{transactional=True} (passed on to the L{Consumer}) a reply to an
    ordinary queue is published in one AMQP transaction with the request's
    ack instead (L{AckWith}): one round trip, not two.  Replies to direct
    reply-to take the confirmed path either way (the transaction does not
    carry them), so this pays only when clients reply to queues of their
    own (C{RPCClient(direct_reply_to=False)}).  A reply whose queue has gone
    is then logged by the consumer's C{on_return}, and the ack stands.
    """

    log = Logger()

    def __init__(
        self,
        connection: AMQPConnection,
        queue: Queue | str,
        handler: Any,
        *,
        prefetch: int = 1,
        publisher: Any = None,
        **consumer_kw: Any,
    ) -> None:
        """
        @param connection: the L{txmsg.amqp.connection.AMQPConnection}.
        @param queue: the request queue (a L{Queue} is declared).
        @param handler: computes the reply from a L{Delivery}.
        @param publisher: the publisher for replies (default: the
            connection's default publisher).
        """
        self._handler = handler
        self._publisher = publisher or connection.publisher()
        self.consumer = Consumer(connection, queue, self._answer, prefetch=prefetch, **consumer_kw)

    async def _answer(self, delivery: Delivery) -> AckWith | None:

        problem = reply_to_problem(delivery.reply_to) if delivery.reply_to else None
        if problem is not None:
            # Checked before the handler runs and before the broker sees it:
            # a forged direct reply-to name can close the whole connection.
            self.log.warn("Dropping RPC request: {problem}", problem=problem)
            return None
        result = self._handler(delivery)
        if hasattr(result, "__await__") and not isinstance(result, Deferred):
            result = ensureDeferred(result)
        reply = await maybeDeferred(lambda: result)
        if not isinstance(reply, (bytes, str)):
            reply = str(reply)
        if not delivery.reply_to:
            self.log.warn("RPC request without reply_to; no reply sent")
            return None
        props = make_properties(
            persistent=False,
            correlation_id=delivery.correlation_id,
        )
        if delivery.transactional and not is_direct_reply_to(delivery.reply_to):
            body = reply.encode("utf-8") if isinstance(reply, str) else reply
            return AckWith((Publish("", delivery.reply_to, body, props),))
        try:
            # A direct reply-to reply is returned as unroutable by RabbitMQ up
            # to 4.1 even when delivered (see txmsg.amqp.reply): no mandatory.
            await self._publisher.publish(
                "",
                delivery.reply_to,
                reply,
                properties=props,
                persistent=False,
                mandatory=not is_direct_reply_to(delivery.reply_to),
            )
        except PublishReturned:
            self.log.info(
                "RPC client for {corr!r} is gone; dropping the request",
                corr=delivery.correlation_id,
            )
            raise DropMessage() from None
        return None

    def stop(self) -> Deferred:
        """Stop consuming (see L{Consumer.stop})."""
        return self.consumer.stop()
