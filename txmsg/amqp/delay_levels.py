# -*- test-case-name: txmsg.test.test_amqp_delay_levels -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The arithmetic of delayed delivery on RabbitMQ: binary-weighted TTL levels.

A delay is rounded I{up} to a whole number of ticks (L{TICK} = 100 ms) and
written in binary, most significant bit first, as the first L{LEVELS} words
of the routing key; the destination queue's name follows::

    0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.1.tasks     (11 ticks)

Level C{L} is an exchange and a queue of the same name (L{level_name}); the
queue's messages expire after C{TICK * 2**L} and are dead-lettered, routing
key unchanged, to the exchange of level C{L - 1} (level 0: the I{deliver}
exchange).  Exchange C{L} routes a message whose bit C{L} is 1 to its queue
(where it waits C{2**L} ticks) and one whose bit is 0 straight on to
exchange C{L - 1} (an exchange-to-exchange binding: no wait).  The deliver
exchange routes by the name after the bits to the destination queue.

Each level queue holds messages of one TTL only, so RabbitMQ, which expires
messages at the head of a queue, never holds a short wait behind a long
one; a message waits in at most C{LEVELS} queues, and the sum of its waits
is its tick count exactly.  Any number of distinct delays share the same
C{2 * LEVELS + 1} exchanges and C{LEVELS} queues.  With 25 levels the
longest delay is C{2**25 - 1} ticks (38.8 days).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = [
    "LEVELS",
    "MAX_DELAY",
    "TICK",
    "DelayTooLong",
    "binding_key",
    "check_destination",
    "decode",
    "deliver_binding_key",
    "encode",
    "first_level",
    "level_name",
    "level_ttl_ms",
    "path",
    "ticks",
]

#: Seconds per tick: delays are rounded up to a multiple of this.
TICK = Fraction(1, 10)
#: How many levels (bits of the tick count).
LEVELS = 25
#: The longest delay, in seconds (C{2**LEVELS - 1} ticks: 38.8 days).
MAX_DELAY = float((2**LEVELS - 1) * TICK)
#: The routing key's limit (AMQP short string).
_MAX_KEY = 255


class DelayTooLong(ValueError):
    """A delay beyond L{MAX_DELAY}."""


def ticks(delay: float) -> int:
    """
    The number of ticks a message waits for C{delay} seconds: C{delay}
    (to the microsecond) rounded up to a whole tick; 0 for C{delay <= 0}.

    @raise DelayTooLong: beyond L{MAX_DELAY}.
    @raise ValueError: for NaN or infinity.
    """
    if not math.isfinite(delay):
        raise ValueError(f"delay must be a finite number of seconds, not {delay!r}")
    if delay <= 0:
        return 0
    # To the nearest microsecond first, so that 0.3 (a float a hair above or
    # below 3/10) is 3 ticks, then up to the next tick exactly.
    n = math.ceil(Fraction(round(delay * 1_000_000), 1_000_000) / TICK)
    if n >= 2**LEVELS:
        raise DelayTooLong(
            f"delay {delay:.1f} s is longer than the longest supported delay "
            f"({MAX_DELAY:.0f} s, {MAX_DELAY / 86400:.1f} days)"
        )
    return n


def level_ttl_ms(level: int) -> int:
    """The message TTL of level C{level}'s queue, in milliseconds."""
    _check_level(level)
    return int(TICK * 1000) * 2**level


def level_name(prefix: str, level: int) -> str:
    """The name of level C{level}'s exchange and queue (C{prefix.LL})."""
    _check_level(level)
    return f"{prefix}.{level:02d}"


def check_destination(queue: str) -> None:
    """
    Refuse a destination queue name the routing key cannot carry: empty,
    too long, or with a C{*} or C{#} word (a topic pattern).

    @raise ValueError: naming the problem.
    """
    if not queue:
        raise ValueError("a delayed message needs a destination queue name")
    if len(queue.encode("utf-8")) + 2 * LEVELS > _MAX_KEY:
        raise ValueError(
            f"queue name {queue[:40]!r}... is too long for delayed delivery "
            f"(at most {_MAX_KEY - 2 * LEVELS} bytes)"
        )
    if any(word in ("*", "#") for word in queue.split(".")):
        raise ValueError(f"queue name {queue!r} has a '*' or '#' word; it cannot be delayed")


def encode(n: int, queue: str) -> str:
    """
    The routing key of a message waiting C{n} ticks, for C{queue}.
    """
    if not 0 <= n < 2**LEVELS:
        raise ValueError(f"tick count {n} out of range")
    check_destination(queue)
    bits = format(n, f"0{LEVELS}b")
    return ".".join(bits) + "." + queue


def decode(routing_key: str) -> tuple[int, str]:
    """
    The tick count and destination queue of a routing key made by
    L{encode}.

    @raise ValueError: for a key that is not one.
    """
    words = routing_key.split(".", LEVELS)
    if (
        len(words) != LEVELS + 1
        or not words[LEVELS]
        or any(w not in ("0", "1") for w in words[:LEVELS])
    ):
        raise ValueError(f"not a delayed-delivery routing key: {routing_key[:80]!r}")
    return int("".join(words[:LEVELS]), 2), words[LEVELS]


def first_level(n: int) -> int | None:
    """
    The level whose exchange a message waiting C{n} ticks is published to
    (its highest set bit), or L{None} for 0 ticks (no wait).
    """
    return n.bit_length() - 1 if n > 0 else None


def binding_key(level: int, bit: int) -> str:
    """
    The topic pattern on level C{level}'s exchange matching messages whose
    bit C{level} is C{bit} (to its queue for 1, on to the next level for 0).
    """
    _check_level(level)
    if bit not in (0, 1):
        raise ValueError("bit is 0 or 1")
    return ".".join(["*"] * (LEVELS - 1 - level) + [str(bit), "#"])


def deliver_binding_key(queue: str) -> str:
    """
    The topic pattern binding destination C{queue} to the deliver exchange:
    exactly L{LEVELS} words of bits, then the queue's name (so that
    C{a.b} and C{b} never match each other's messages).
    """
    check_destination(queue)
    return ".".join(["*"] * LEVELS) + "." + queue


def path(n: int) -> list[int]:
    """
    The levels whose queues a message waiting C{n} ticks passes through,
    in order (highest first); their TTLs add up to C{n} ticks.
    """
    return [level for level in range(LEVELS - 1, -1, -1) if n >> level & 1]


def _check_level(level: int) -> None:
    if not 0 <= level < LEVELS:
        raise ValueError(f"level must be in [0, {LEVELS}), not {level}")
