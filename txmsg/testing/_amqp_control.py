# -*- test-case-name: txmsg.test.test_testing_amqp_control,txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The control side of L{txmsg.testing.MemoryBroker}: what a test may ask of
the broker beyond ordinary AMQP (failure injection, withheld replies and
confirms, connection blocking), and the record each channel keeps of what
its client sent.

Every control makes the broker do something RabbitMQ does (answer late,
nack, return, block a connection); none makes it break the protocol.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, TypeVar, cast

from pika import frame, spec
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from txmsg.testing._amqp_state import BrokerMessage, BrokerState

__all__ = ["AMQP_METHODS", "BrokerControls", "ChannelRecord", "recorded"]

#: The AMQP method each client call sends, as named in L{BrokerControls.hold_replies}.
AMQP_METHODS = {
    "channel": "Channel.Open",
    "exchange_declare": "Exchange.Declare",
    "exchange_delete": "Exchange.Delete",
    "queue_declare": "Queue.Declare",
    "queue_bind": "Queue.Bind",
    "queue_unbind": "Queue.Unbind",
    "queue_delete": "Queue.Delete",
    "queue_purge": "Queue.Purge",
    "basic_qos": "Basic.Qos",
    "confirm_delivery": "Confirm.Select",
    "tx_select": "Tx.Select",
    "tx_commit": "Tx.Commit",
    "basic_consume": "Basic.Consume",
    "basic_cancel": "Basic.Cancel",
    "basic_get": "Basic.Get",
    "close": "Channel.Close",
    "connection_close": "Connection.Close",
}

_F = TypeVar("_F", bound=Callable[..., Any])


def recorded(method: _F) -> _F:
    """
    Record each call of a channel method in its channel's
    L{ChannelRecord.calls} (with every argument by name, defaults
    included); a Deferred it returns is withheld while the broker holds
    replies to its AMQP method (L{BrokerControls.hold_replies}).
    """
    signature = inspect.signature(method)
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kw: Any) -> Any:
        bound = signature.bind(self, *args, **kw)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        self.calls.append((name, arguments))
        result = method(self, *args, **kw)
        if isinstance(result, Deferred) and name in AMQP_METHODS:
            return self._broker._reply(self, AMQP_METHODS[name], result)
        return result

    return cast(_F, wrapper)


class ChannelRecord:
    """
    What a client sent on a memory channel, for assertions.

    @ivar calls: C{(method_name, arguments)} for every pika call, in order.
    @ivar deliveries: every message delivered on this channel (pika's
        C{ReceivedMessage}: C{method.delivery_tag} is its tag).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.deliveries: list[Any] = []

    def _called(self, name: str) -> list[dict[str, Any]]:
        return [kw for n, kw in self.calls if n == name]

    @property
    def published(self) -> list[tuple[str, str, bytes, Any, bool]]:
        """C{(exchange, routing_key, body, properties, mandatory)} per publish, as sent."""
        return [
            (kw["exchange"], kw["routing_key"], kw["body"], kw["properties"], kw["mandatory"])
            for kw in self._called("basic_publish")
        ]

    @property
    def acks(self) -> list[int]:
        """The delivery tags the client acked, in order."""
        return [kw["delivery_tag"] for kw in self._called("basic_ack")]

    @property
    def nacks(self) -> list[tuple[int, bool]]:
        """C{(delivery_tag, requeue)} for every nack (and reject) the client sent."""
        return [(kw["delivery_tag"], kw["requeue"]) for kw in self._called("basic_nack")]


class _Rule:
    """One injected publish failure (see L{BrokerControls.nack_next})."""

    def __init__(
        self,
        kind: str,
        count: int | None,
        routing_key: str,
        exchange: str | None,
        seconds: float = 0.0,
    ) -> None:
        self.kind = kind
        self.count = count
        self.routing_key = routing_key
        self.exchange = exchange
        self.seconds = seconds

    def take(self, msg: BrokerMessage) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.exchange is not None and msg.exchange != self.exchange:
            return False
        if not fnmatchcase(msg.routing_key, self.routing_key):
            return False
        if self.count is not None:
            self.count -= 1
        return True


@dataclass
class _HeldReply:
    """A reply the broker withholds: C{release} sends it, C{fail} drops it."""

    owner: Any
    method: str
    release: Callable[[], object]
    fail: Callable[[BaseException], object]


@dataclass
class _HeldConfirm:
    channel: Any
    seq: int
    outcome: Any


class BrokerControls(BrokerState):
    """
    Failure injection and reply control for L{txmsg.testing.MemoryBroker}.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.connections: list[Any] = []
        self._rules: list[_Rule] = []
        self._holding = False
        self._held: list[_HeldConfirm] = []
        self._hold_methods: set[str] = set()
        self._held_replies: list[_HeldReply] = []

    # -- injected publish failures ---------------------------------------------

    def nack_next(
        self, count: int | None = 1, routing_key: str = "*", exchange: str | None = None
    ) -> None:
        """
        Nack the next C{count} matching confirmed publishes (not routed):
        they fail with L{txmsg.amqp.PublishNacked}.

        @param routing_key: a glob on the routing key.
        @param count: L{None} for every one from now on.
        """
        self._rules.append(_Rule("nack", count, routing_key, exchange))

    def return_next(
        self, count: int | None = 1, routing_key: str = "*", exchange: str | None = None
    ) -> None:
        """
        Treat the next C{count} matching publishes as unroutable: a mandatory
        one fails with L{txmsg.amqp.PublishReturned}.
        """
        self._rules.append(_Rule("return", count, routing_key, exchange))

    def delay_next(
        self,
        seconds: float,
        count: int | None = 1,
        routing_key: str = "*",
        exchange: str | None = None,
    ) -> None:
        """
        Deliver the next C{count} matching publishes C{seconds} late (they are
        routed and confirmed at once): e.g. delay an RPC reply (routing key
        C{"amq.rabbitmq.reply-to.*"}) to test a caller's timeout.
        """
        self._rules.append(_Rule("delay", count, routing_key, exchange, seconds))

    def clear_failures(self) -> None:
        """Forget every pending injected publish failure."""
        self._rules = []

    def _rule(self, msg: BrokerMessage) -> _Rule | None:
        for rule in self._rules:
            if rule.take(msg):
                return rule
        return None

    # -- publisher confirms ------------------------------------------------------

    def hold_confirms(self) -> None:
        """Route publishes but withhold their confirms until released."""
        self._holding = True

    def release_confirms(self) -> None:
        """Send every withheld confirm, and stop withholding them."""
        self._holding = False
        held, self._held = self._held, []
        for h in held:
            h.channel._confirm(h.seq, h.outcome)

    def unconfirmed(self, channel: Any = None) -> list[int]:
        """The sequence numbers of the withheld confirms (of C{channel}), in order."""
        return [h.seq for h in self._held if channel is None or h.channel is channel]

    def release_confirm(
        self,
        seq: int | None = None,
        multiple: bool = False,
        nack: bool = False,
        channel: Any = None,
    ) -> None:
        """
        Send one withheld confirm (confirms stay withheld for later publishes).

        @param seq: the publish sequence number on its channel (default: the
            oldest withheld).
        @param multiple: confirm every withheld publish up to C{seq} at once,
            as RabbitMQ's C{multiple} flag does.
        @param nack: send C{Basic.Nack} instead of the routing outcome (the
            publish fails with L{txmsg.amqp.PublishNacked}).
        @param channel: the publishing channel (default: any).
        """
        held = [h for h in self._held if channel is None or h.channel is channel]
        if not held:
            raise ValueError("no confirm is withheld")
        if seq is None:
            seq = held[0].seq
        chosen = [h for h in held if (h.seq <= seq if multiple else h.seq == seq)]
        for h in chosen:
            self._held.remove(h)
            h.channel._confirm(h.seq, "nack" if nack else h.outcome, seq if multiple else None)

    def _send_confirm(self, channel: Any, seq: int, outcome: Any, delay: float) -> None:
        if self._holding:
            self._held.append(_HeldConfirm(channel, seq, outcome))
        else:
            self.clock.callLater(delay, channel._confirm, seq, outcome)

    # -- withheld replies ----------------------------------------------------------

    def hold_replies(self, *methods: str) -> None:
        """
        Withhold the broker's reply to each of C{methods} (AMQP names:
        C{"Channel.Open"}, C{"Confirm.Select"}, C{"Basic.Consume"},
        C{"Queue.Declare"}, C{"Channel.Close"}, C{"Connection.Close"}, ...;
        see L{AMQP_METHODS}) until L{release_replies}, as a slow broker
        would.  The method itself takes effect; only its C{-Ok} waits.  A
        withheld reply fails with the close reason if its channel or
        connection closes first.
        """
        unknown = set(methods) - set(AMQP_METHODS.values())
        if unknown:
            raise ValueError("unknown AMQP methods: {}".format(", ".join(sorted(unknown))))
        self._hold_methods.update(methods)

    def release_replies(self, *methods: str) -> None:
        """
        Send the withheld replies to C{methods} (default: all), in order,
        and stop withholding them.
        """
        chosen = set(methods) if methods else set(self._hold_methods)
        self._hold_methods -= chosen
        held = [h for h in self._held_replies if h.method in chosen]
        self._held_replies = [h for h in self._held_replies if h.method not in chosen]
        for h in held:
            h.release()

    def _holds(self, method: str) -> bool:
        return method in self._hold_methods

    def _hold(
        self,
        owner: Any,
        method: str,
        release: Callable[[], object],
        fail: Callable[[BaseException], object],
    ) -> None:
        self._held_replies.append(_HeldReply(owner, method, release, fail))

    def _reply(self, owner: Any, method: str, result: Deferred) -> Deferred:
        """
        C{result}, or a Deferred that waits for it while C{method} is held.
        A call that already failed (its channel or connection is closed:
        the client fails it without asking the broker) is not held.
        """
        if not self._holds(method) or (result.called and isinstance(result.result, Failure)):
            return result
        late: Deferred = Deferred()

        def fail(reason: BaseException) -> None:
            result.addErrback(lambda _: None)
            if not late.called:
                late.errback(reason)

        self._hold(owner, method, lambda: result.chainDeferred(late), fail)
        return late

    def _fail_held(self, owner: Any, reason: BaseException) -> None:
        """C{owner} (a channel or connection) closed: its withheld replies fail."""
        mine = [h for h in self._held_replies if h.owner is owner]
        for h in mine:
            self._held_replies.remove(h)
            h.fail(reason)

    # -- connection blocking ---------------------------------------------------------

    def block_connections(self, reason: str = "low on memory") -> None:
        """
        Send C{Connection.Blocked} to every client connection, as RabbitMQ
        does when a memory or disk alarm goes off (txmsg emits C{amqp.blocked}).
        """
        for conn in list(self.connections):
            method = frame.Method(0, spec.Connection.Blocked(reason))
            for callback in conn._impl.blocked:
                callback(conn, method)

    def unblock_connections(self) -> None:
        """Send C{Connection.Unblocked} to every client connection (the alarm cleared)."""
        for conn in list(self.connections):
            method = frame.Method(0, spec.Connection.Unblocked())
            for callback in conn._impl.unblocked:
                callback(conn, method)
