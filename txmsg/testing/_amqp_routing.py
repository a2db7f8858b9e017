# -*- test-case-name: txmsg.test.test_testing,txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
How the in-memory broker's exchanges route: direct, fanout, topic (C{*} and
C{#}) and headers (C{x-match} all/any), as RabbitMQ does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Exchange", "route_topic"]


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

    def route(self, key: str, headers: dict) -> list[str]:
        """The queues a message with routing key C{key} and C{headers} goes to."""
        out: list[str] = []
        for queue, bkey, args in self.bindings:
            if self.type == "fanout":
                hit = True
            elif self.type == "topic":
                hit = route_topic(bkey, key)
            elif self.type == "headers":
                hit = _headers_match(args, headers)
            else:
                hit = bkey == key
            if hit and queue not in out:
                out.append(queue)
        return out
