# -*- test-case-name: txmsg.test.test_redis_streams -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A work queue on a Redis stream with one consumer group: the commands and
Lua scripts the Redis Streams worker broker
(L{txmsg.worker.brokers.redis_streams}) is built on.

Keys of work queue C{Q} (every key one script touches shares the hash tag
C{{Q}}, so a queue lives in one Redis Cluster slot)::

    txmsg:{Q}:stream          stream: the work queue (consumer group "txmsg");
                              with priorities its level 0
    txmsg:{Q}:stream:p<k>     stream: priority level k (1 to the maximum)
    txmsg:{Q}:max-priority    string: the highest level, set by the workers
                              started with --max-priority (absent: none)
    txmsg:{Q}:dead            stream: dead letters (the queue's Q.dead)
    txmsg:delay:{Q}:due       zset:   scheduled entry id -> due time (unix s)
    txmsg:delay:{Q}:items     hash:   scheduled entry id -> its fields and values,
                                      each as <length>:<bytes>, concatenated
    txmsg:delay:{Q}:attempts  hash:   (unused by the worker; the delay queue's)

An entry's fields are the AMQP message's properties (see L{encode_entry}):
C{body}, C{content_type}, C{message_id}, C{correlation_id}, C{reply_to},
C{priority}, C{headers} (a JSON object), each present only when set; dead
letters add
C{reason}, C{error} and C{attempts}.

Settling an entry (ack, retry now, retry later, dead-letter) is one Lua
script: the XACK and the writes it depends on are atomic, one round trip.
An acked entry is deleted (XDEL), so the stream holds only entries not yet
delivered or not yet settled: it is never trimmed past an unacked entry.
Retries wait in the delay queue's keys (L{txmsg.redis.delay_queue}) and are
moved back into the stream by its poller (C{kind="stream"}).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred

from txmsg.redis._common import Script, as_bytes
from txmsg.redis._delay_scripts import STREAM_LEVEL_LUA
from txmsg.redis.slots import tagged_prefix

__all__ = [
    "GROUP",
    "StreamEntry",
    "StreamKeys",
    "decode_entry",
    "encode_entry",
    "add",
    "ensure_group",
    "parse_entries",
    "read_levels",
]

#: The consumer group every worker of a queue belongs to.
GROUP = "txmsg"

_FIELDS = ("content_type", "message_id", "correlation_id", "reply_to", "priority")


@dataclass(frozen=True)
class StreamKeys:
    """
    The keys of work queue C{queue} (see the module docs).
    """

    queue: str

    @property
    def prefix(self) -> str:
        """C{txmsg:{Q}}: the hash-tagged prefix of the streams."""
        return tagged_prefix("txmsg", self.queue)

    @property
    def stream(self) -> str:
        """The work stream."""
        return self.prefix + ":stream"

    def level(self, priority: int) -> str:
        """The stream of priority level C{priority} (0: L{stream})."""
        return self.stream if priority <= 0 else "{}:p{}".format(self.stream, priority)

    def levels(self, max_priority: int | None) -> list[str]:
        """The level streams, highest first (just L{stream} without priorities)."""
        return [self.level(k) for k in range(max_priority or 0, -1, -1)]

    @property
    def max_priority(self) -> str:
        """The key holding the highest priority level the workers read."""
        return self.prefix + ":max-priority"

    @property
    def dead(self) -> str:
        """The dead-letter stream."""
        return self.prefix + ":dead"

    #: The namespace of the retry L{txmsg.redis.DelayQueue}, named C{Q}:
    #: its keys are C{txmsg:delay:{Q}:due} etc., in the queue's slot.
    delay_namespace = "txmsg:delay"

    @property
    def delay_due(self) -> str:
        """The retry delay queue's sorted set."""
        return tagged_prefix(self.delay_namespace, self.queue) + ":due"

    @property
    def delay_items(self) -> str:
        """The retry delay queue's hash of entries."""
        return tagged_prefix(self.delay_namespace, self.queue) + ":items"


@dataclass(frozen=True)
class StreamEntry:
    """
    One stream entry, decoded.

    @ivar entry_id: its id (C{"<ms>-<seq>"}).
    @ivar deliveries: how often the group delivered it (1: first time).
    """

    entry_id: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    priority: str | None = None
    deliveries: int = 1
    stream: str | None = None


def encode_entry(
    body: bytes,
    headers: Mapping[str, Any] | None = None,
    **properties: str | None,
) -> list[bytes]:
    """
    The field/value list of an entry: C{body}, then each of
    C{content_type}, C{message_id}, C{correlation_id}, C{reply_to} that is
    set, then C{headers} as JSON when there are any.
    """
    out = [b"body", bytes(body)]
    for name in _FIELDS:
        value = properties.get(name)
        if value is not None:
            out += [name.encode("ascii"), str(value).encode("utf-8")]
    if headers:
        out += [b"headers", json.dumps(dict(headers), separators=(",", ":")).encode("utf-8")]
    return out


def _text(value: Any) -> str | None:
    return None if value is None else as_bytes(value).decode("utf-8", "replace")


def decode_entry(
    entry_id: Any, fields: Sequence[Any], deliveries: int = 1, stream: str | None = None
) -> StreamEntry:
    """
    An entry from its id and its flat field/value list.  A C{headers} field
    that is not a JSON object is passed on as it is (the worker's header
    check dead-letters it as C{bad-headers}).
    """
    values: dict[str, Any] = {}
    for i in range(0, len(fields) - 1, 2):
        values[as_bytes(fields[i]).decode("utf-8", "replace")] = fields[i + 1]
    headers: Any = {}
    raw = values.get("headers")
    if raw is not None:
        try:
            headers = json.loads(as_bytes(raw))
        except ValueError:
            headers = _text(raw)
    return StreamEntry(
        entry_id=_text(entry_id) or "",
        body=as_bytes(values.get("body", b"")),
        headers=headers,
        deliveries=deliveries,
        stream=stream,
        **{name: _text(values.get(name)) for name in _FIELDS},
    )


def parse_entries(reply: Any) -> list[StreamEntry]:
    """
    The entries of an C{XREADGROUP} reply (L{None}: none), each with the
    stream it came from.
    """
    out: list[StreamEntry] = []
    for stream, entries in reply or ():
        key = _text(stream)
        for entry_id, fields in entries or ():
            if fields is None:  # deleted while pending
                continue
            out.append(decode_entry(entry_id, fields, stream=key))
    return out


def ensure_group(handler: Any, stream: str) -> Deferred[None]:
    """
    C{XGROUP CREATE stream txmsg 0 MKSTREAM}: the group reads what the
    stream already holds; an existing group is fine.
    """
    d = handler.execute_command("XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM")

    def exists(failure: Any) -> None:
        if "BUSYGROUP" not in str(failure.value):
            failure.raiseException()

    return d.addCallbacks(lambda _: None, exists)


# KEYS: stream, dead, delay due, delay items
# ARGV: id, mode, due time, new id, n, f1, v1, ... fn, vn
#   mode 'ack': XACK; 'add' (retry now, hand back): XADD the fields to the
#   stream; 'dead': XADD them to the dead stream; 'later': schedule them in
#   the delay queue at the due time under the new id.  Then XACK and XDEL
#   the entry.  Returns 1 if the entry was still pending, else 0 (another
#   consumer claimed it: the writes are made anyway, the work is done).
SETTLE = Script(
    "streams.settle",
    """
local mode = ARGV[2]
if mode ~= 'ack' then
  local fields = {}
  for i = 6, 5 + 2 * tonumber(ARGV[5]) do fields[#fields + 1] = ARGV[i] end
  if mode == 'add' then
    redis.call('xadd', KEYS[1], '*', unpack(fields))
  elseif mode == 'dead' then
    redis.call('xadd', KEYS[2], '*', unpack(fields))
  else
    local packed = {}
    for _, v in ipairs(fields) do packed[#packed + 1] = #v .. ':' .. v end
    redis.call('hset', KEYS[4], ARGV[4], table.concat(packed))
    redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
  end
end
local n = redis.call('xack', KEYS[1], 'txmsg', ARGV[1])
redis.call('xdel', KEYS[1], ARGV[1])
return n
""",
)

# KEYS: stream   ARGV: consumer, min idle ms, count
# XAUTOCLAIM entries idle for longer than the visibility timeout, with
# their delivery counts: {id, count, fields, id, count, fields, ...}.
CLAIM = Script(
    "streams.claim",
    """
local claimed = redis.call('xautoclaim', KEYS[1], 'txmsg', ARGV[1], ARGV[2],
  '0-0', 'COUNT', ARGV[3])
local out = {}
for _, entry in ipairs(claimed[2]) do
  local info = redis.call('xpending', KEYS[1], 'txmsg', entry[1], entry[1], 1)
  if entry[2] and info[1] then
    out[#out + 1] = entry[1]
    out[#out + 1] = info[1][4]
    out[#out + 1] = entry[2]
  end
end
return out
""",
)

# KEYS: reply stream   ARGV: ttl ms, f1, v1, ...
REPLY = Script(
    "streams.reply",
    """
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('xadd', KEYS[1], 'MAXLEN', '~', 10000, '*', unpack(fields))
redis.call('pexpire', KEYS[1], ARGV[1])
return 1
""",
)


def settle(
    handler: Any,
    keys: StreamKeys,
    entry_id: str,
    mode: str = "ack",
    fields: Sequence[bytes] = (),
    due: float = 0.0,
    new_id: str = "",
    stream: str | None = None,
) -> Deferred[Any]:
    """
    Run the settle script (see its comment) for C{entry_id} of C{stream}
    (default: the queue's; a level stream with priorities).
    """
    tail = [entry_id, mode, repr(float(due)), new_id, len(fields) // 2, *fields]
    return SETTLE(
        handler,
        [stream or keys.stream, keys.dead, keys.delay_due, keys.delay_items],
        tail,
    )


def claim(
    handler: Any,
    keys: StreamKeys,
    consumer: str,
    idle: float,
    count: int,
    stream: str | None = None,
) -> Deferred[Any]:
    """
    Claim up to C{count} entries of C{stream} (default: the queue's) idle
    for C{idle} seconds; fires with L{StreamEntry} values carrying their
    delivery counts.
    """
    key = stream or keys.stream
    d = CLAIM(handler, [key], [consumer, max(1, int(idle * 1000)), int(count)])

    def parse(reply: Any) -> list[StreamEntry]:
        reply = reply or []
        return [
            decode_entry(reply[i], reply[i + 2], int(reply[i + 1]), key)
            for i in range(0, len(reply) - 2, 3)
        ]

    return d.addCallback(parse)


def reply(handler: Any, key: str, fields: Sequence[bytes], ttl: float = 3600.0) -> Deferred[Any]:
    """
    Add a reply entry to stream C{key} (kept C{ttl} seconds).
    """
    return REPLY(handler, [key], [max(1, int(ttl * 1000)), *fields])


# KEYS: the level streams, highest first   ARGV: consumer, count
# Strict priority: XREADGROUP (not blocking) each level in turn until
# COUNT entries are read; an XREADGROUP-shaped reply.
READ = Script(
    "streams.read",
    """
local left = tonumber(ARGV[2])
local out = {}
for _, key in ipairs(KEYS) do
  if left <= 0 then break end
  local got = redis.call('xreadgroup', 'GROUP', 'txmsg', ARGV[1], 'COUNT', left,
    'STREAMS', key, '>')
  if got then
    for _, s in ipairs(got) do
      out[#out + 1] = s
      left = left - #s[2]
    end
  end
end
return out
""",
)


def read_levels(
    handler: Any, streams: Sequence[str], consumer: str, count: int
) -> Deferred[list[StreamEntry]]:
    """
    Read up to C{count} new entries, from the first of C{streams} (the
    level streams, highest first) that has some, then the next: fires
    with them, in that order.
    """
    d = READ(handler, list(streams), [consumer, int(count)])
    return d.addCallback(parse_entries)


# KEYS: stream, max-priority, delay due, delay items
# ARGV: due time ('': now), new id, f1, v1, ...
# A client's send: XADD the fields to the stream of their priority level,
# or schedule them in the delay queue (as the settle script's 'later').
ADD = Script(
    "streams.add",
    STREAM_LEVEL_LUA
    + """
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
if ARGV[1] ~= '' then
  local packed = {}
  for _, v in ipairs(fields) do packed[#packed + 1] = #v .. ':' .. v end
  redis.call('hset', KEYS[4], ARGV[2], table.concat(packed))
  redis.call('zadd', KEYS[3], ARGV[1], ARGV[2])
  return ARGV[2]
end
return redis.call('xadd', stream_level(KEYS[1], KEYS[2], fields), '*', unpack(fields))
""",
)


def add(
    handler: Any,
    keys: StreamKeys,
    fields: Sequence[bytes],
    due: float | None = None,
    new_id: str = "",
) -> Deferred[Any]:
    """
    Add an entry (the fields of L{encode_entry}) to queue C{keys}: to the
    stream of its C{priority}'s level (capped at the queue's
    C{max-priority}; level 0 when it has none), or with C{due} (a Unix
    time) to the retry delay queue, moved into the stream when due by
    the workers' poller under C{new_id}.
    """
    when = "" if due is None else repr(float(due))
    return ADD(
        handler,
        [keys.stream, keys.max_priority, keys.delay_due, keys.delay_items],
        [when, new_id, *fields],
    )
