# -*- test-case-name: txmsg.test.test_redis_slots -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Redis Cluster key slots (pure: strings in, numbers out).

Redis Cluster splits the key space into 16384 slots, C{CRC16(key) mod
16384}, and refuses (C{CROSSSLOT}) a script, transaction or multi-key
command whose keys map to more than one slot.  When a key contains a
I{hash tag}, C{{...}} with at least one character inside, only the text
between the first C{{} and the first C{}} after it is hashed, so
C{delay:{jobs}:due} and C{delay:{jobs}:items} share a slot.

txmsg names the keys of each multi-key primitive with one hash tag per
queue (L{tagged_prefix}); C{txmsg.test.test_redis_slots} checks that every
script's keys map to one slot.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SLOTS", "check_taggable", "crc16", "hash_tag", "key_slot", "same_slot", "tagged_prefix"]

#: The number of slots of a Redis Cluster.
SLOTS = 16384


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _table()


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XModem), the checksum Redis Cluster uses."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def hash_tag(key: bytes) -> bytes:
    """The part of C{key} that is hashed (its hash tag, or all of it)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: str | bytes) -> int:
    """The cluster slot of C{key} (C{CLUSTER KEYSLOT key})."""
    data = key.encode("utf-8") if isinstance(key, str) else key
    return crc16(hash_tag(data)) % SLOTS


def same_slot(keys: Iterable[str | bytes]) -> bool:
    """Whether all C{keys} map to one slot (true for none or one)."""
    return len({key_slot(k) for k in keys}) <= 1


def check_taggable(namespace: str, name: str) -> None:
    """
    Refuse a namespace or name that would break the one-slot key scheme.

    @raise ValueError: when C{name} is empty or either contains C{{} or C{}}.
    """
    if not name:
        raise ValueError("a queue name cannot be empty")
    for what, text in (("namespace", namespace), ("name", name)):
        if "{" in text or "}" in text:
            raise ValueError(
                f"the {what} {text!r} contains a brace: txmsg puts the queue name "
                "in braces (a Redis Cluster hash tag), so names may not contain them"
            )


def tagged_prefix(namespace: str, name: str) -> str:
    """
    C{"<namespace>:{<name>}"}: a key prefix whose hash tag is the name, so
    every key built on it (C{prefix + ":due"}, ...) shares one slot.  An
    empty namespace gives C{"{<name>}"}.

    @raise ValueError: when C{name} is empty or either part contains a
        brace (the tag would no longer be the name).
    """
    check_taggable(namespace, name)
    return f"{namespace}:{{{name}}}" if namespace else f"{{{name}}}"
