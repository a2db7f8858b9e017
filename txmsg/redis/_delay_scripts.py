# -*- test-case-name: txmsg.test.test_redis_delay_queue -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The delay queue's Lua scripts: every state change of an item is one of these,
so it is atomic across processes.

Keys of a queue with prefix P (C{<namespace>:{<name>}}: the braces are a
Redis Cluster hash tag, so every key below shares one slot)::

    P:due         zset  id -> due time (unix seconds)
    P:processing  zset  id -> lease deadline (claimed, not yet acked)
    P:items       hash  id -> payload bytes
    P:attempts    hash  id -> number of claims so far
    P:dead        list  dead-letter envelopes (JSON)
    P:wake        pub/sub channel: published when an item becomes the earliest
"""

from __future__ import annotations

from txmsg.redis._common import Script

__all__ = ["CLAIM", "DEAD", "MOVE", "SCHEDULE", "SETTLE"]

# KEYS: due, items   ARGV: id, due, payload, wake channel ('' = none)
SCHEDULE = Script(
    "delay.schedule",
    """
redis.call('hset', KEYS[2], ARGV[1], ARGV[3])
redis.call('zadd', KEYS[1], ARGV[2], ARGV[1])
if ARGV[4] ~= '' then
  local first = redis.call('zrange', KEYS[1], 0, 0)
  if first[1] == ARGV[1] then redis.call('publish', ARGV[4], ARGV[2]) end
end
return 1
""",
)

# KEYS: due, processing, items, attempts   ARGV: now, limit, lease deadline
# Returns {next due or '', next lease or '', id, payload, attempts, due, ...}
CLAIM = Script(
    "delay.claim",
    """
local expired = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[1],
  'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('zrem', KEYS[2], id)
  redis.call('zadd', KEYS[1], ARGV[1], id)
end
local out = {'', ''}
local limit = tonumber(ARGV[2])
if limit > 0 then
  local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1],
    'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #due, 2 do
    local id = due[i]
    redis.call('zrem', KEYS[1], id)
    local payload = redis.call('hget', KEYS[3], id)
    if payload then
      redis.call('zadd', KEYS[2], ARGV[3], id)
      local n = redis.call('hincrby', KEYS[4], id, 1)
      out[#out + 1] = id
      out[#out + 1] = payload
      out[#out + 1] = n
      out[#out + 1] = due[i + 1]
    else
      redis.call('hdel', KEYS[4], id)
    end
  end
end
local nd = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
if nd[2] then out[1] = nd[2] end
local nl = redis.call('zrange', KEYS[2], 0, 0, 'WITHSCORES')
if nl[2] then out[2] = nl[2] end
return out
""",
)

# KEYS: processing, due, items, attempts
# ARGV: id, due, id, due, ... (the outcomes of claimed items, in the order
# they settled): due '' acks the item (deletes it, wherever it is); a due
# time retries it (back to due at that time, if it is still in processing).
# Returns one number per id: acks, how many sets held it (0: its lease had
# expired and it was back in due, or gone); retries, 1 if moved, else 0.
SETTLE = Script(
    "delay.settle",
    """
local out = {}
for i = 1, #ARGV, 2 do
  local id, due = ARGV[i], ARGV[i + 1]
  if due == '' then
    out[#out + 1] = redis.call('zrem', KEYS[1], id) + redis.call('zrem', KEYS[2], id)
    redis.call('hdel', KEYS[3], id)
    redis.call('hdel', KEYS[4], id)
  elseif redis.call('zrem', KEYS[1], id) == 1 then
    redis.call('zadd', KEYS[2], due, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
""",
)

# KEYS: processing, items, attempts, dead   ARGV: id, envelope
DEAD = Script(
    "delay.dead",
    """
if redis.call('zrem', KEYS[1], ARGV[1]) == 1 then
  redis.call('hdel', KEYS[2], ARGV[1])
  redis.call('hdel', KEYS[3], ARGV[1])
  redis.call('rpush', KEYS[4], ARGV[2])
  return 1
end
return 0
""",
)

#: Lua: the stream of an entry's priority level.  C{stream_level(base,
#: max_key, fields)}: C{base} (level 0) unless the fields carry a
#: C{priority} and C{max_key} holds the highest level, then
#: C{base:p<min(priority, highest)>} (same hash tag, so the same slot).
STREAM_LEVEL_LUA = """
local function stream_level(base, max_key, fields)
  local p
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'priority' then p = tonumber(fields[i + 1]) end
  end
  if not p or p < 1 or not max_key then return base end
  local top = tonumber(redis.call('get', max_key) or 0) or 0
  if top < 1 then return base end
  p = math.floor(p)
  if p > top then p = top end
  return base .. ':p' .. p
end
"""

# KEYS: due, items, attempts, list or stream[, max-priority]
# ARGV: now, limit[, 'stream']
# Moves due payloads to a list queue (LPUSH: the list queue's tail), or with
# 'stream' to a stream (XADD of the fields and values the payload holds,
# each as <length>:<bytes>), into the level stream of its priority when a
# max-priority key is given.  Returns {moved, next due or ''}.
MOVE = Script(
    "delay.move",
    STREAM_LEVEL_LUA
    + """
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1],
  'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('zrem', KEYS[1], id)
  local payload = redis.call('hget', KEYS[2], id)
  if payload then
    if ARGV[3] == 'stream' then
      local fields, pos = {}, 1
      while pos <= #payload do
        local colon = string.find(payload, ':', pos, true)
        local n = tonumber(string.sub(payload, pos, colon - 1))
        fields[#fields + 1] = string.sub(payload, colon + 1, colon + n)
        pos = colon + n + 1
      end
      redis.call('xadd', stream_level(KEYS[4], KEYS[5], fields), '*', unpack(fields))
    else
      redis.call('lpush', KEYS[4], payload)
    end
  end
  redis.call('hdel', KEYS[2], id)
  redis.call('hdel', KEYS[3], id)
end
local nd = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
return {#ids, nd[2] or ''}
""",
)
