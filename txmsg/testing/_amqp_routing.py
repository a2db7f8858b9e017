# -*- test-case-name: txmsg.test.test_testing,txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
How the in-memory broker's exchanges route: direct, fanout, topic (C{*} and
C{#}) and headers (C{x-match} all/any), exchange-to-exchange bindings and
alternate exchanges, as RabbitMQ does; and RabbitMQ's dead-letter cycle
check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Exchange", "is_cycle", "route_from", "route_topic"]


def route_topic(pattern: str, key: str) -> bool:
    """
    Whether topic binding C{pattern} (C{*}: one word, C{#}: zero or more)
    matches routing key C{key}.
    """
    p, k = pattern.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return any(match(i + 1, jj) for jj in range(j, len(k) + 1))
        if j == len(k):
            return False
        return (p[i] == "*" or p[i] == k[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _headers_match(args: dict, headers: dict) -> bool:
    mode = str(args.get("x-match", "all"))
    wanted = {k: v for k, v in args.items() if not k.startswith("x-")}
    if not wanted:
        return mode.startswith("all")
    hits = [k in headers and (v is None or headers[k] == v) for k, v in wanted.items()]
    return all(hits) if mode.startswith("all") else any(hits)


@dataclass
class Exchange:
    """An exchange: its type, flags and bindings, and how it routes."""

    name: str
    type: str
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict = field(default_factory=dict)
    bindings: list = field(default_factory=list)  # (queue, key, args)
    exchange_bindings: list = field(default_factory=list)  # (exchange, key, args)

    def _hit(self, bkey: str, args: dict, key: str, headers: dict) -> bool:
        if self.type == "fanout":
            return True
        if self.type == "topic":
            return route_topic(bkey, key)
        if self.type == "headers":
            return _headers_match(args, headers)
        return bkey == key

    def route(self, key: str, headers: dict) -> list[str]:
        """The queues a message with routing key C{key} and C{headers} goes to."""
        out: list[str] = []
        for queue, bkey, args in self.bindings:
            if queue not in out and self._hit(bkey, args, key, headers):
                out.append(queue)
        return out

    def route_exchanges(self, key: str, headers: dict) -> list[str]:
        """The exchanges bound to this one that the message goes on to."""
        out: list[str] = []
        for exchange, bkey, args in self.exchange_bindings:
            if exchange not in out and self._hit(bkey, args, key, headers):
                out.append(exchange)
        return out


def route_from(
    exchanges: dict[str, Exchange], start: Exchange, key: str, headers: dict
) -> list[str]:
    """
    The queues a message published to C{start} reaches: exchange-to-exchange
    bindings are followed (each exchange once), and an exchange none of whose
    bindings match hands the message to its C{alternate-exchange}.
    """
    out: list[str] = []
    todo, seen = [start], {start.name}
    while todo:
        x = todo.pop(0)
        queues = x.route(key, headers)
        onward = x.route_exchanges(key, headers)
        if not queues and not onward and x.arguments.get("alternate-exchange"):
            onward = [x.arguments["alternate-exchange"]]
        out.extend(q for q in queues if q not in out)
        for name in onward:
            nxt = exchanges.get(name)
            if nxt is not None and name not in seen:
                seen.add(name)
                todo.append(nxt)
    return out


def is_cycle(queue: str, deaths: list[dict]) -> bool:
    """
    RabbitMQ's dead-letter cycle check: whether a message whose C{x-death}
    history (newest first, this death included) is C{deaths} already died
    in C{queue} with no rejection since (then it is not put there again).
    """
    for death in deaths:
        if death.get("reason") == "rejected":
            return False
        if death.get("queue") == queue:
            return True
    return False
