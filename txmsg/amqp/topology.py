# -*- test-case-name: txmsg.test.test_amqp_topology -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Declarative AMQP topology: frozen descriptions of exchanges, queues and
bindings, declared idempotently and replayed after every reconnect.

A queue with an empty name is I{server-named}: the broker picks its name
(C{amq.gen-...}) at each declaration, so after a reconnect it has a new name.
L{Topology} remembers the name the broker gave for each such L{Queue} object,
and bindings, consumers and RPC reply queues that refer to the L{Queue} object
(rather than to a string) always use the current name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = [
    "EXCHANGE_TYPES",
    "Binding",
    "Exchange",
    "ExchangeBinding",
    "Queue",
    "Topology",
    "UnresolvedQueueName",
    "queue_arguments",
]

#: The exchange types RabbitMQ ships with.
EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")


class UnresolvedQueueName(LookupError):
    """
    A server-named L{Queue} was used before the broker gave it a name (it has
    not been declared on the current connection yet).
    """


def queue_arguments(
    *,
    dead_letter_exchange: str | None = None,
    dead_letter_routing_key: str | None = None,
    message_ttl: int | None = None,
    max_length: int | None = None,
    queue_type: str | None = None,
    **extra: Any,
) -> dict:
    """
    Build the C{x-...} arguments of a queue declaration.

    @param dead_letter_exchange: C{x-dead-letter-exchange} (C{""} is the
        default exchange, which routes by C{dead_letter_routing_key}).
    @param dead_letter_routing_key: C{x-dead-letter-routing-key}.
    @param message_ttl: C{x-message-ttl} in milliseconds.
    @param max_length: C{x-max-length}, in messages.
    @param queue_type: C{x-queue-type}: C{"classic"}, C{"quorum"} or
        C{"stream"}.
    @param extra: other arguments, passed through unchanged.
    """
    args = dict(extra)
    for key, value in (
        ("x-dead-letter-exchange", dead_letter_exchange),
        ("x-dead-letter-routing-key", dead_letter_routing_key),
        ("x-message-ttl", message_ttl),
        ("x-max-length", max_length),
        ("x-queue-type", queue_type),
    ):
        if value is not None:
            args[key] = value
    return args


@dataclass(frozen=True)
class Exchange:
    """
    An exchange declaration.

    @ivar name: the exchange name (not empty: the default exchange needs no
        declaration).
    @ivar type: C{direct}, C{fanout}, C{topic} or C{headers}.
    """

    name: str
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("the default exchange cannot be declared")
        if self.type not in EXCHANGE_TYPES and not self.type.startswith("x-"):
            raise ValueError(f"unknown exchange type {self.type!r}")

    def declare(self, channel: Any) -> Deferred:
        """Declare this exchange on C{channel} (a TwistedChannel)."""
        return channel.exchange_declare(
            exchange=self.name,
            exchange_type=self.type,
            durable=self.durable,
            auto_delete=self.auto_delete,
            internal=self.internal,
            arguments=self.arguments or None,
        )


def _token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Queue:
    """
    A queue declaration.

    An empty C{name} makes a server-named queue; every such L{Queue} object is
    distinct (it carries a private token), so two of them are two queues.

    @ivar arguments: C{x-...} arguments, see L{queue_arguments}.
    """

    name: str = ""
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict = field(default_factory=dict)
    token: str = field(default_factory=_token, repr=False)

    def __post_init__(self) -> None:
        if self.name:
            object.__setattr__(self, "token", "name:" + self.name)
        if self.arguments.get("x-queue-type") == "quorum" and (
            self.exclusive or not self.durable or not self.name
        ):
            raise ValueError("quorum queues must be named, durable, not exclusive")

    @classmethod
    def server_named(cls, *, exclusive: bool = True, **kw: Any) -> Queue:
        """
        A queue named by the broker, exclusive and non-durable by default: the
        seeds' C{queue_declare(exclusive=True)} for fanout subscribers.
        """
        kw.setdefault("durable", False)
        kw.setdefault("auto_delete", exclusive)
        return cls(name="", exclusive=exclusive, **kw)

    @property
    def server_named_queue(self) -> bool:
        """Whether the broker picks this queue's name."""
        return not self.name

    def declare(self, channel: Any) -> Deferred:
        """Declare this queue on C{channel}; fires with the C{Queue.DeclareOk} frame."""
        return channel.queue_declare(
            queue=self.name,
            durable=self.durable,
            exclusive=self.exclusive,
            auto_delete=self.auto_delete,
            arguments=self.arguments or None,
        )


@dataclass(frozen=True)
class Binding:
    """
    A binding of a queue to an exchange.

    @ivar queue: a L{Queue} (its current name is looked up at declaration
        time, which is what server-named queues need) or a queue name.
    @ivar exchange: an L{Exchange} or an exchange name.
    @ivar routing_key: the binding key (C{*}/C{#} patterns for topic
        exchanges; ignored by fanout).
    @ivar arguments: binding arguments (for headers exchanges: C{x-match}
        and the header values).
    """

    queue: Queue | str
    exchange: Exchange | str
    routing_key: str = ""
    arguments: dict = field(default_factory=dict)

    @property
    def exchange_name(self) -> str:
        """The exchange's name."""
        ex = self.exchange
        return ex.name if isinstance(ex, Exchange) else ex


@dataclass(frozen=True)
class ExchangeBinding:
    """
    A binding of exchange C{destination} to exchange C{source}: what
    C{source} routes with C{routing_key} goes on to C{destination}.
    """

    destination: str
    source: str
    routing_key: str = ""
    arguments: dict = field(default_factory=dict)


Declaration = Exchange | Queue | Binding | ExchangeBinding


class Topology:
    """
    An ordered, duplicate-free set of declarations, and the names the broker
    gave to server-named queues on the current connection.
    """

    log = Logger()

    def __init__(self, declarations: Iterable[Declaration] = ()) -> None:
        self._items: list[Declaration] = []
        self._names: dict[str, str] = {}
        self.add(*declarations)

    @property
    def declarations(self) -> tuple:
        """All declarations, in declaration order."""
        return tuple(self._items)

    def add(self, *declarations: Declaration) -> list:
        """
        Add declarations, skipping ones equal to a known one; a binding's
        L{Queue} and L{Exchange} objects are added first.

        @return: the declarations that were new, in order.
        """
        new: list = []
        for item in declarations:
            if not isinstance(item, (Exchange, Queue, Binding, ExchangeBinding)):
                raise TypeError(f"not a declaration: {item!r}")
            if isinstance(item, Binding):
                parts = [item.exchange, item.queue]
                new.extend(self.add(*[p for p in parts if not isinstance(p, str)]))
            if item not in self._items:
                self._items.append(item)
                new.append(item)
        return new

    def queue_name(self, queue: Queue | str) -> str:
        """
        The name to use on the wire for C{queue} on the current connection.

        @raise UnresolvedQueueName: for a server-named queue not yet declared.
        """
        if isinstance(queue, str):
            return queue
        if queue.name:
            return queue.name
        try:
            return self._names[queue.token]
        except KeyError:
            raise UnresolvedQueueName(repr(queue)) from None

    def forget_server_names(self) -> None:
        """Forget server-given names (called when a connection is lost)."""
        self._names.clear()

    @inlineCallbacks
    def declare(
        self,
        open_channel: Callable[[], Deferred],
        declarations: Iterable[Declaration] | None = None,
    ) -> Any:
        """
        Declare C{declarations} (default: all) in order on channels from
        C{open_channel}.

        A declaration the broker refuses (e.g. 406 PRECONDITION_FAILED for an
        inequivalent queue) closes its channel: it is logged, a new channel is
        opened, and the rest are still declared.

        @return: a Deferred firing with the list of C{(declaration, Failure)}
            pairs that failed (empty on success). It errbacks only when no
            channel can be opened at all (the connection is gone).
        """
        items = list(self._items if declarations is None else declarations)
        failures: list = []
        channel = None
        try:
            for item in items:
                if channel is None or not channel.is_open:
                    channel = yield open_channel()
                try:
                    yield self._declare_one(channel, item)
                except Exception:
                    f = Failure()
                    self.log.failure("Declaring {item!r} failed", f, item=item)
                    failures.append((item, f))
        finally:
            if channel is not None and channel.is_open:
                try:
                    channel.close()
                except Exception:
                    pass
        return failures

    @inlineCallbacks
    def _declare_one(self, channel: Any, item: Declaration) -> Any:
        if isinstance(item, Queue):
            frame = yield item.declare(channel)
            if item.server_named_queue:
                self._names[item.token] = frame.method.queue
        elif isinstance(item, Exchange):
            yield item.declare(channel)
        elif isinstance(item, ExchangeBinding):
            yield channel.exchange_bind(
                destination=item.destination,
                source=item.source,
                routing_key=item.routing_key,
                arguments=item.arguments or None,
            )
        else:
            yield channel.queue_bind(
                queue=self.queue_name(item.queue),
                exchange=item.exchange_name,
                routing_key=item.routing_key,
                arguments=item.arguments or None,
            )
