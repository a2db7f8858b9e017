# -*- test-case-name: txmsg.test.test_amqp_delayed -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Delayed delivery on RabbitMQ: a message waits in the broker, durably, until
its time, then lands in its destination queue.

    delays = DelayedDelivery(amqp)                      # amqp: an AMQPConnection
    d = delays.publish("tasks", body, 90.0)             # in 90 s
    d = delays.publish("tasks", body, eta=time.time() + 3600)   # at a time
    d = delays.publish("tasks", body, 5, properties=props, publisher=pub)

C{publish(queue, body, delay=0.0, *, eta=None, properties=None,
publisher=None, **publish_kw)} declares the delay topology and the
destination's binding (once; both are replayed after every reconnect), then
publishes, persistent, with publisher confirms: its Deferred fires with
L{None} once the broker has the message safely, or fails (L{PublishError},
L{DelayTooLong}, L{DelayTopologyFailed}).  C{eta} is a UNIX time on this
process's clock (L{None}: use C{delay}); a time in the past, or a delay of 0,
publishes straight to the queue.  C{properties} is a C{pika.BasicProperties}
to start from (headers, message id, reply-to...); C{publish_kw} goes to
L{txmsg.amqp.publisher.Publisher.publish} (C{headers=}, C{content_type=},
C{message_id=}, C{timeout=}...).  A C{expiration} property would cut the
wait short and dead-letter headers (C{x-death}, C{x-first-death-*},
C{x-last-death-*}) would make RabbitMQ drop the message as a dead-letter
cycle: both are removed.

The mechanism (binary-weighted TTL levels, the delay in the routing key) is
described in L{txmsg.amqp.delay_levels}; the design, its limits and its
measurements in C{docs/delays.md}.  Names (C{prefix} C{"txmsg.delay"}, or
C{"txmsg.delay.quorum"} for C{queue_type="quorum"}):

  - C{<prefix>.00} ... C{<prefix>.24}: each a topic exchange and a queue
    (message TTL C{100 ms * 2**level}, dead-lettering to the level below);
  - C{<prefix>.deliver}: the topic exchange every destination queue is
    bound to (C{*.*. ... .*.<queue>});
  - C{<prefix>.unroutable}: a queue (behind the deliver exchange's
    alternate exchange of the same name) for messages whose destination
    was not bound when they came due, instead of losing them.

With C{queue_type="quorum"} the level queues are quorum queues that
dead-letter C{at-least-once} (C{x-dead-letter-strategy}, with
C{x-overflow: reject-publish}, as RabbitMQ requires): a message moving from
one level to the next is never lost, even when a node fails.  Otherwise
they are durable classic queues (C{x-queue-mode: lazy}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.interfaces import IReactorTime

from txmsg._reactor import maybe_global_reactor
from txmsg.amqp import delay_levels as levels
from txmsg.amqp.delay_levels import LEVELS, DelayTooLong
from txmsg.amqp.properties import make_properties
from txmsg.amqp.topology import (
    Binding,
    Declaration,
    Exchange,
    ExchangeBinding,
    Queue,
    queue_arguments,
)

__all__ = ["DelayTooLong", "DelayTopologyFailed", "DelayedDelivery", "strip_dead_letter_headers"]

#: Dead-letter headers RabbitMQ reads for its cycle check: never republished.
_DEATH_HEADERS = ("x-death",)
_DEATH_PREFIXES = ("x-first-death-", "x-last-death-")


class DelayTopologyFailed(Exception):
    """
    The broker refused part of the delay topology (for instance a level
    queue declared earlier with other arguments: 406 PRECONDITION_FAILED).
    """


def strip_dead_letter_headers(headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """
    C{headers} without RabbitMQ's dead-letter history (a copy), or L{None}.
    """
    if headers is None:
        return None
    return {
        k: v
        for k, v in headers.items()
        if k not in _DEATH_HEADERS and not k.startswith(_DEATH_PREFIXES)
    }


class DelayedDelivery:
    """
    Publish messages that reach their queue after a delay; see the module
    docstring.

    @ivar amqp: the L{txmsg.amqp.AMQPConnection}.
    @ivar prefix: the prefix of the topology's names.
    @ivar queue_type: C{"quorum"} or L{None} (classic).
    """

    def __init__(
        self,
        amqp: Any,
        *,
        queue_type: str | None = None,
        prefix: str | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        if queue_type not in (None, "classic", "quorum"):
            raise ValueError(f"delay queues are classic or quorum, not {queue_type!r}")
        self.amqp = amqp
        self.queue_type = queue_type if queue_type == "quorum" else None
        self.prefix = prefix or ("txmsg.delay.quorum" if self.queue_type else "txmsg.delay")
        self._clock = clock
        self._declared = False
        self._destinations: set[str] = set()
        self._lock = DeferredLock()

    @property
    def deliver_exchange(self) -> str:
        """The exchange due messages leave the levels through."""
        return self.prefix + ".deliver"

    @property
    def unroutable(self) -> str:
        """The queue (and exchange) of due messages with no bound destination."""
        return self.prefix + ".unroutable"

    def level(self, level: int) -> str:
        """The name of level C{level}'s exchange and queue."""
        return levels.level_name(self.prefix, level)

    def _queue_arguments(self, **kw: Any) -> dict[str, Any]:
        args = queue_arguments(**kw)
        if self.queue_type == "quorum":
            args.update(
                {
                    "x-queue-type": "quorum",
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
            )
        else:
            args["x-queue-mode"] = "lazy"
        return args

    def declarations(self) -> list[Declaration]:
        """
        Every exchange, queue and binding of the delay topology, top level
        first.
        """
        out: list[Declaration] = [
            Exchange(self.unroutable, "fanout", durable=True),
            Queue(self.unroutable, durable=True, arguments=self._queue_arguments()),
            Binding(self.unroutable, self.unroutable),
            Exchange(
                self.deliver_exchange,
                "topic",
                durable=True,
                arguments={"alternate-exchange": self.unroutable},
            ),
        ]
        for level in range(LEVELS):
            name = self.level(level)
            below = self.level(level - 1) if level else self.deliver_exchange
            out.append(Exchange(name, "topic", durable=True))
            out.append(
                Queue(
                    name,
                    durable=True,
                    arguments=self._queue_arguments(
                        message_ttl=levels.level_ttl_ms(level), dead_letter_exchange=below
                    ),
                )
            )
        for level in range(LEVELS):
            name = self.level(level)
            below = self.level(level - 1) if level else self.deliver_exchange
            out.append(Binding(name, name, levels.binding_key(level, 1)))
            out.append(ExchangeBinding(below, name, levels.binding_key(level, 0)))
        return out

    def destination(self, queue: str) -> Binding:
        """The binding of destination C{queue} to the deliver exchange."""
        return Binding(queue, self.deliver_exchange, levels.deliver_binding_key(queue))

    def declare(self, *queues: str) -> Deferred[None]:
        """
        Declare the delay topology (once) and bind C{queues} as
        destinations; all of it is replayed after every reconnect.

        @return: a Deferred firing when declared (at once when not
            connected: the connection declares it on connecting), or
            failing with L{DelayTopologyFailed}.
        """
        if self._declared and self._destinations.issuperset(queues) and not self._lock.locked:
            return succeed(None)
        # One declaration at a time: a publish must not overtake the
        # declaration of the levels it goes through (publishes made while it
        # is in flight wait for it, then find nothing left to declare).
        return self._lock.run(self._declare, queues)

    def _declare(self, queues: tuple[str, ...]) -> Deferred[None]:
        todo: list[Declaration] = []
        if not self._declared:
            todo.extend(self.declarations())
        fresh = [q for q in dict.fromkeys(queues) if q not in self._destinations]
        todo.extend(self.destination(q) for q in fresh)
        if not todo:
            return succeed(None)
        d: Deferred[Any] = self.amqp.declare(*todo)

        def check(failures: list) -> None:
            if failures:
                item, f = failures[0]
                raise DelayTopologyFailed(
                    "declaring the delay topology failed at {!r}: {}".format(item, f.value)
                )
            self._declared = True
            self._destinations.update(fresh)

        return d.addCallback(check)

    def _now(self) -> float:
        clock = self._clock if self._clock is not None else getattr(self.amqp, "reactor", None)
        return float(maybe_global_reactor(clock).seconds())

    def delay_until(self, eta: float) -> float:
        """
        Seconds from now until UNIX time C{eta}, on this process's clock
        (C{clock}, or the connection's reactor).
        """
        return eta - self._now()

    def publish(
        self,
        queue: str,
        body: bytes | str,
        delay: float = 0.0,
        *,
        eta: float | None = None,
        properties: Any = None,
        publisher: Any = None,
        **publish_kw: Any,
    ) -> Deferred[None]:
        """
        Publish C{body} so that it reaches C{queue} after C{delay} seconds
        (or at UNIX time C{eta}); see the module docstring.

        @return: a Deferred firing with L{None} once the broker confirmed it.
        """
        try:
            wait = self.delay_until(eta) if eta is not None else float(delay)
            levels.encode(levels.ticks(wait), queue)
        except (TypeError, ValueError) as e:
            return fail(e)
        due = self._now() + wait
        props = make_properties(properties, headers=publish_kw.pop("headers", None))
        publish_kw.pop("expiration", None)
        props.expiration = None
        props.headers = strip_dead_letter_headers(props.headers)
        pub = publisher if publisher is not None else self.amqp.publisher()
        if wait <= 0:
            return pub.publish("", queue, body, properties=props, **publish_kw)

        def send(_: object) -> Deferred[None]:
            # The wait is measured from now, once the levels are declared: a
            # first publish that waited for the declarations is not late.
            n = levels.ticks(due - self._now())
            first = levels.first_level(n)
            if first is None:
                return pub.publish("", queue, body, properties=props, **publish_kw)
            key = levels.encode(n, queue)
            return pub.publish(self.level(first), key, body, properties=props, **publish_kw)

        return self.declare(queue).addCallback(send)
