# -*- test-case-name: txmsg.test.test_amqp_reply -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Checking a request's C{reply_to} before anything touches the broker.

C{reply_to} comes from the wire.  For most names the worst a bad one does
is a lost reply, but RabbitMQ decodes direct reply-to names
(C{amq.rabbitmq.reply-to.<pid>.<key>}) itself: C{<pid>} is the base64 of an
Erlang process id in the external term format, C{<key>} the base64 of a
random id.  The oldest decoder hands C{<pid>} to C{binary_to_term}; the
newer one (RabbitMQ 4.x, and the 3.10.8 tested here, whose pids name the
node C{reply@<hash>}) parses the same bytes as a pid and falls back to the
old one.  A name that does not decode (C{amq.rabbitmq.reply-to.abc.def})
fails inside the connection process: a publish, or a passive
C{queue.declare}, to it closes the I{whole} connection with 541
INTERNAL_ERROR.  So such names are refused before they are used.

L{reply_to_problem} is conservative: a direct reply-to name must have
exactly the shape RabbitMQ generates (two dot-separated base64 parts, the
first a well-formed pid term).  Other names need only fit an AMQP short
string (at most 255 bytes of UTF-8).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

__all__ = ["DIRECT_REPLY_TO_PREFIX", "MAX_NAME_BYTES", "reply_to_problem"]

#: Names RabbitMQ generates for direct reply-to callers start with this.
DIRECT_REPLY_TO_PREFIX = "amq.rabbitmq.reply-to."

#: An AMQP 0-9-1 short string (a queue name, a routing key) is at most this
#: many bytes.
MAX_NAME_BYTES = 255

_BASE64 = re.compile(r"\A[A-Za-z0-9+/]+={0,2}\Z")

# Erlang external term format: version, then a pid.
_VERSION = 131
_PID_EXT = 103  # node, ID:32, Serial:32, Creation:8
_NEW_PID_EXT = 88  # node, ID:32, Serial:32, Creation:32
# The atom tags a node name may have, with the size of their length field.
_ATOM_TAGS = {100: 2, 118: 2, 115: 1, 119: 1}
_NODE = re.compile(rb"\A[A-Za-z0-9_.\-]+@[A-Za-z0-9_.\-]+\Z")


def _b64(text: str) -> bytes | None:
    if len(text) % 4 or not _BASE64.match(text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_pid_term(data: bytes) -> bool:
    """
    Whether C{data} is exactly one Erlang pid in the external term format,
    with a node name of the form C{name@host}.
    """
    if len(data) < 4 or data[0] != _VERSION or data[1] not in (_PID_EXT, _NEW_PID_EXT):
        return False
    size = _ATOM_TAGS.get(data[2])
    if size is None:
        return False
    start = 3 + size
    if len(data) < start:
        return False
    length = data[3] if size == 1 else struct.unpack(">H", data[3:5])[0]
    node = data[start : start + length]
    rest = 9 if data[1] == _PID_EXT else 12
    return len(node) == length and bool(_NODE.match(node)) and len(data) == start + length + rest


def reply_to_problem(name: str) -> str | None:
    """
    What is wrong with C{name} as a C{reply_to}, or L{None} when a reply
    may be sent to it.
    """
    try:
        size = len(name.encode("utf-8"))
    except UnicodeError:
        return "reply_to is not valid UTF-8"
    if not name:
        return "reply_to is empty"
    if size > MAX_NAME_BYTES:
        return "reply_to is {} bytes long; the limit is {}".format(size, MAX_NAME_BYTES)
    if not name.startswith(DIRECT_REPLY_TO_PREFIX):
        return None
    parts = name[len(DIRECT_REPLY_TO_PREFIX) :].split(".")
    bad = "reply_to {!r} is not a direct reply-to name RabbitMQ generated".format(name[:100])
    if len(parts) != 2 or not all(parts):
        return bad + " (not <pid>.<key>)"
    pid, key = (_b64(part) for part in parts)
    if pid is None or key is None or not _is_pid_term(pid):
        return bad + " (its parts do not decode)"
    return None
