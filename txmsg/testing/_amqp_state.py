# -*- test-case-name: txmsg.test.test_testing,txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The in-memory AMQP broker behind L{txmsg.testing.MemoryBroker}: exchanges
(direct, fanout, topic, headers and the default exchange), queues (durable,
exclusive, auto-delete, server-named), bindings, message TTL and per-message
expiration (expired at the head of the queue, as RabbitMQ does), dead-letter
exchanges with C{x-death} headers, priority queues (C{x-max-priority}), and
direct reply-to (routing, and declares of its names).  Time is a
L{twisted.internet.task.Clock} (or any C{IReactorTime}).

The client side (channels, consumers, acks, confirms) lives in
L{txmsg.testing._amqp_broker}; this module holds state and routing only.
"""

from __future__ import annotations

import base64
import struct
import uuid
from collections import deque
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from pika.spec import BasicProperties
from twisted.internet.task import Clock

from txmsg.testing._amqp_priority import insert
from txmsg.testing._amqp_routing import Exchange as _Exchange
from txmsg.testing._amqp_routing import is_cycle, route_from, route_topic

__all__ = ["BrokerError", "BrokerMessage", "route_topic"]

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class BrokerError(Exception):
    """
    A channel-level AMQP error (it closes the channel it happened on).

    @ivar reply_code: the AMQP code (404 NOT_FOUND, 405 RESOURCE_LOCKED,
        406 PRECONDITION_FAILED).
    @ivar reply_text: RabbitMQ-style text.
    """

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(reply_code, reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text


@dataclass
class BrokerMessage:
    """
    A message in the broker.

    @ivar properties: C{pika.BasicProperties}.
    @ivar expires_at: clock time at which it expires in its current queue.
    """

    exchange: str
    routing_key: str
    body: bytes
    properties: Any
    redelivered: bool = False
    expires_at: float | None = None

    @property
    def headers(self) -> dict:
        """The message headers (empty dict when none)."""
        return dict(self.properties.headers or {})


class _Queue:
    def __init__(
        self,
        name: str,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: dict,
        owner: Any,
    ) -> None:
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        self.owner = owner if exclusive else None
        self.ready: deque[BrokerMessage] = deque()
        self.consumers: list[Any] = []
        self.had_consumer = False
        self.unacked = 0
        self.timer: Any = None
        self.next = 0

    def equivalent(
        self, durable: bool, exclusive: bool, auto_delete: bool, arguments: dict
    ) -> bool:
        return (self.durable, self.exclusive, self.auto_delete, self.arguments) == (
            durable,
            exclusive,
            auto_delete,
            dict(arguments or {}),
        )


class BrokerState:
    """
    Exchanges, queues, bindings and routing; see L{txmsg.testing.MemoryBroker}
    for the public face.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._exchanges: dict[str, _Exchange] = {}
        self._queues: dict[str, _Queue] = {}
        self._reply_to: dict[str, Any] = {}
        self._kicks: set[str] = set()
        for name, kind in (
            ("amq.direct", "direct"),
            ("amq.fanout", "fanout"),
            ("amq.topic", "topic"),
            ("amq.headers", "headers"),
        ):
            self._exchanges[name] = _Exchange(name, kind)

    # -- declarations -----------------------------------------------------

    def declare_exchange(
        self,
        name: str,
        type: str = "direct",
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict | None = None,
        passive: bool = False,
    ) -> None:
        """Declare an exchange (idempotent; inequivalent: 406)."""
        ex = self._exchanges.get(name)
        if ex is None:
            if passive:
                raise BrokerError(404, f"NOT_FOUND - no exchange '{name}' in vhost '/'")
            self._exchanges[name] = _Exchange(
                name, type, durable, auto_delete, internal, dict(arguments or {})
            )
        elif not passive and (ex.type, ex.durable) != (type, durable):
            raise BrokerError(
                406,
                f"PRECONDITION_FAILED - inequivalent arg 'type' or "
                f"'durable' for exchange '{name}' in vhost '/'",
            )

    def declare_queue(
        self,
        name: str,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict | None = None,
        owner: Any = None,
        passive: bool = False,
    ) -> _Queue:
        """Declare a queue; an empty name makes a server-named one."""
        if not name:
            if passive:
                raise BrokerError(404, "NOT_FOUND - no queue '' in vhost '/'")
            name = "amq.gen-" + uuid.uuid4().hex[:22]
        q = self._queues.get(name)
        if q is None:
            if passive:
                raise BrokerError(404, f"NOT_FOUND - no queue '{name}' in vhost '/'")
            q = self._queues[name] = _Queue(
                name, durable, exclusive, auto_delete, arguments or {}, owner
            )
            return q
        self.check_access(q, owner)
        if not passive and not q.equivalent(durable, exclusive, auto_delete, arguments or {}):
            raise BrokerError(
                406, f"PRECONDITION_FAILED - inequivalent arg for queue '{name}' in vhost '/'"
            )
        return q

    def check_access(self, q: _Queue, owner: Any) -> None:
        """An exclusive queue is only usable from its own connection (405)."""
        if q.owner is not None and owner is not None and q.owner is not owner:
            raise BrokerError(
                405,
                f"RESOURCE_LOCKED - cannot obtain exclusive access "
                f"to locked queue '{q.name}' in vhost '/'",
            )

    def queue(self, name: str, owner: Any = None) -> _Queue:
        """The queue C{name}, or a 404 L{BrokerError}."""
        q = self._queues.get(name)
        if q is None:
            raise BrokerError(404, f"NOT_FOUND - no queue '{name}' in vhost '/'")
        self.check_access(q, owner)
        return q

    def bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: dict | None = None,
        owner: Any = None,
    ) -> None:
        """Bind (idempotent)."""
        self.queue(queue, owner)
        ex = self._exchange(exchange)
        if not exchange:
            raise BrokerError(
                403, "ACCESS_REFUSED - operation not permitted on the default exchange"
            )
        binding = (queue, routing_key, dict(arguments or {}))
        if binding not in ex.bindings:
            ex.bindings.append(binding)

    def unbind(
        self, queue: str, exchange: str, routing_key: str = "", arguments: dict | None = None
    ) -> None:
        """Remove a binding (idempotent)."""
        ex = self._exchange(exchange)
        binding = (queue, routing_key, dict(arguments or {}))
        if binding in ex.bindings:
            ex.bindings.remove(binding)

    def delete_queue(self, name: str) -> int:
        """Delete a queue, its bindings and consumers; returns its message count."""
        q = self._queues.pop(name, None)
        if q is None:
            return 0
        for ex in self._exchanges.values():
            ex.bindings = [b for b in ex.bindings if b[0] != name]
        if q.timer is not None and q.timer.active():
            q.timer.cancel()
        for consumer in list(q.consumers):
            consumer.cancelled_by_broker()
        return len(q.ready)

    def delete_exchange(self, name: str) -> None:
        """Delete an exchange (idempotent)."""
        if name and not name.startswith("amq."):
            self._exchanges.pop(name, None)
            for ex in self._exchanges.values():
                ex.exchange_bindings = [b for b in ex.exchange_bindings if b[0] != name]

    def _exchange(self, name: str) -> _Exchange:
        ex = self._exchanges.get(name)
        if ex is None and name:
            raise BrokerError(404, f"NOT_FOUND - no exchange '{name}' in vhost '/'")
        return ex  # type: ignore[return-value]

    # -- routing ------------------------------------------------------------

    def route(self, exchange: str, routing_key: str, properties: Any) -> list[str]:
        """
        The queues (or direct reply-to consumers, as C{"amq.rabbitmq.reply-to.*"}
        keys) a publish reaches; 404 L{BrokerError} for a missing exchange.
        """
        ex = self._exchange(exchange)
        if ex is None:
            if routing_key in self._queues:
                return [routing_key]
            if routing_key in self._reply_to:
                return [routing_key]
            return []
        return route_from(self._exchanges, ex, routing_key, dict(properties.headers or {}))

    def bind_exchange(
        self, destination: str, source: str, routing_key: str = "", arguments: dict | None = None
    ) -> None:
        """Bind exchange C{destination} to exchange C{source} (idempotent)."""
        src, dst = self._exchange(source), self._exchange(destination)
        if src is None or dst is None:
            raise BrokerError(
                403, "ACCESS_REFUSED - operation not permitted on the default exchange"
            )
        binding = (destination, routing_key, dict(arguments or {}))
        if binding not in src.exchange_bindings:
            src.exchange_bindings.append(binding)

    def unbind_exchange(
        self, destination: str, source: str, routing_key: str = "", arguments: dict | None = None
    ) -> None:
        """Remove an exchange-to-exchange binding (idempotent)."""
        src = self._exchange(source)
        binding = (destination, routing_key, dict(arguments or {}))
        if src is not None and binding in src.exchange_bindings:
            src.exchange_bindings.remove(binding)

    def enqueue(self, names: list[str], message: BrokerMessage, at: float | None = None) -> None:
        """
        Put a copy of C{message} into each named queue (or reply-to
        consumer), as if at time C{at} (default: now) for its TTL.
        """
        for name in names:
            target = self._reply_to.get(name)
            if target is not None:
                target.deliver_direct(_copy(message))
                continue
            q = self._queues.get(name)
            if q is None:
                continue
            msg = _copy(message)
            msg.expires_at = self._expiry(q, msg, at)
            _insert(q, msg)
            self.kick(q.name)

    def _expiry(self, q: _Queue, msg: BrokerMessage, at: float | None) -> float | None:
        ttls = []
        if q.arguments.get("x-message-ttl") is not None:
            ttls.append(int(q.arguments["x-message-ttl"]))
        expiration = msg.properties.expiration
        if expiration is not None:
            ttls.append(int(expiration))
        if not ttls:
            return None
        # Rounded to the microsecond: sums of float TTLs must not drift late.
        return round((self.clock.seconds() if at is None else at) + min(ttls) / 1000.0, 6)

    def kick(self, name: str) -> None:
        """Schedule expiry and delivery for queue C{name} (on the next turn)."""
        if name not in self._kicks:
            self._kicks.add(name)
            self.clock.callLater(0, self._dispatch, name)

    def _dispatch(self, name: str) -> None:
        self._kicks.discard(name)
        q = self._queues.get(name)
        if q is None:
            return
        self._expire(q)
        while q.ready and q.consumers:
            consumer = self._next_consumer(q)
            if consumer is None:
                break
            msg = q.ready.popleft()
            consumer.deliver(msg)
            self._expire(q)
        self._schedule_expiry(q)

    def _next_consumer(self, q: _Queue) -> Any:
        n = len(q.consumers)
        for i in range(n):
            c = q.consumers[(q.next + i) % n]
            if c.has_capacity():
                q.next = (q.next + i + 1) % n
                return c
        return None

    def _expire(self, q: _Queue) -> None:
        now = self.clock.seconds()
        while q.ready and q.ready[0].expires_at is not None and q.ready[0].expires_at <= now:
            self.dead_letter(q, q.ready.popleft(), "expired")

    def _schedule_expiry(self, q: _Queue) -> None:
        if q.timer is not None and q.timer.active():
            q.timer.cancel()
        q.timer = None
        if q.ready and q.ready[0].expires_at is not None:
            delay = max(0.0, q.ready[0].expires_at - self.clock.seconds())
            q.timer = self.clock.callLater(delay, self.kick, q.name)

    def requeue(self, queue: str, messages: list[BrokerMessage]) -> None:
        """Put messages back at the head of C{queue}, marked redelivered."""
        q = self._queues.get(queue)
        if q is None:
            return
        for msg in reversed(messages):
            msg.redelivered = True
            _insert(q, msg, front=True)
        self.kick(queue)

    def dead_letter(self, q: _Queue, msg: BrokerMessage, reason: str) -> None:
        """Dead-letter C{msg} from C{q} (C{reason}: rejected, expired, maxlen)."""
        dlx = q.arguments.get("x-dead-letter-exchange")
        if dlx is None:
            return
        if dlx and dlx not in self._exchanges:
            return

        props = BasicProperties(**vars(msg.properties))
        headers = dict(props.headers or {})
        deaths = [dict(d) for d in headers.get("x-death", [])]
        for d in deaths:
            if d.get("queue") == q.name and d.get("reason") == reason:
                deaths.remove(d)
                d["count"] = d.get("count", 1) + 1
                deaths.insert(0, d)
                break
        else:
            deaths.insert(
                0,
                {
                    "count": 1,
                    "reason": reason,
                    "queue": q.name,
                    "time": int(self.clock.seconds()),
                    "exchange": msg.exchange,
                    "routing-keys": [msg.routing_key],
                },
            )
        headers["x-death"] = deaths
        headers.setdefault("x-first-death-reason", reason)
        headers.setdefault("x-first-death-queue", q.name)
        headers.setdefault("x-first-death-exchange", msg.exchange)
        headers["x-last-death-reason"] = reason
        headers["x-last-death-queue"] = q.name
        headers["x-last-death-exchange"] = msg.exchange
        if props.expiration is not None:
            deaths[0]["original-expiration"] = props.expiration
            props.expiration = None
        props.headers = headers
        key = q.arguments.get("x-dead-letter-routing-key") or msg.routing_key
        dead = BrokerMessage(dlx, key, msg.body, props)
        targets = self.route(dlx, key, props)
        if reason != "rejected":
            # RabbitMQ's cycle check: a message that already died in a
            # target queue, with no rejection since, is not put there again.
            targets = [t for t in targets if not is_cycle(t, deaths)]
        # An expired message moves on at the moment it expired, even when the
        # clock jumped past it (one Clock.advance over several TTLs).
        self.enqueue(targets, dead, msg.expires_at if reason == "expired" else None)

    # -- direct reply-to ------------------------------------------------------

    def reply_to_address(self, consumer: Any) -> str:
        """
        A fresh C{amq.rabbitmq.reply-to.<pid>.<key>} address for
        C{consumer}, shaped as RabbitMQ makes them.
        """
        token = uuid.uuid4().bytes
        node = b"reply@memory"
        pid = bytes([131, 88, 118]) + struct.pack(">H", len(node)) + node + token[:12]
        key = base64.b64encode(token).decode()
        address = "{}.{}.{}".format(DIRECT_REPLY_TO, base64.b64encode(pid).decode(), key)
        self._reply_to[address] = consumer
        return address

    def forget_reply_to(self, consumer: Any) -> None:
        """Drop every reply-to address of C{consumer}."""
        for k in [k for k, v in self._reply_to.items() if v is consumer]:
            del self._reply_to[k]

    def check_reply_to(self, name: str) -> None:
        """
        A declare (passive or not) of a name starting C{amq.rabbitmq.reply-to},
        as RabbitMQ up to 4.1 answers it: the pseudo-queue itself, and a
        generated name while its consumer is consuming, exist; otherwise
        404 NOT_FOUND naming it.
        """
        if name != DIRECT_REPLY_TO and name not in self._reply_to:
            raise BrokerError(404, f"NOT_FOUND - no queue '{name}' in vhost '/'")

    def returned(self, names: list[str]) -> bool:
        """
        Whether a mandatory publish that reached C{names} comes back
        (312 NO_ROUTE): when no queue is among them.  A direct reply-to
        consumer gets its reply as a side effect of routing, which RabbitMQ
        up to 4.1 does not count: a mandatory reply is delivered I{and}
        returned.
        """
        return all(name in self._reply_to for name in names)

    # -- inspection -------------------------------------------------------------

    def queue_names(self, pattern: str = "*") -> list[str]:
        """Queue names matching the glob C{pattern}, sorted."""
        return sorted(n for n in self._queues if fnmatchcase(n, pattern))

    def exchange_names(self) -> list[str]:
        """Declared exchange names, sorted."""
        return sorted(self._exchanges)

    def exchange_type(self, name: str) -> str | None:
        """The type of exchange C{name}, or L{None}."""
        ex = self._exchanges.get(name)
        return ex.type if ex is not None else None


def _insert(q: _Queue, msg: BrokerMessage, front: bool = False) -> None:
    insert(q.ready, msg, q.arguments.get("x-max-priority"), front)


def _copy(msg: BrokerMessage) -> BrokerMessage:

    props = BasicProperties(**vars(msg.properties))
    if props.headers is not None:
        props.headers = dict(props.headers)
    return BrokerMessage(msg.exchange, msg.routing_key, msg.body, props, msg.redelivered)
