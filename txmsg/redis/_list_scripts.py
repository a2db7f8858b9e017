# -*- test-case-name: txmsg.test.test_redis_list_queue -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The reliable list queue's Lua scripts.

Keys of a queue with key Q and tag T (C{queue:{name}} both, or Q = the
name and T = C{{name}} without a namespace; one Redis Cluster slot)::

    Q                      list: producers LPUSH, consumers take from the right
    T:processing:<id>      list: items consumer <id> is working on
    T:consumer:<id>        string with a TTL: consumer <id>'s heartbeat
    T:consumers            set of consumer ids that may have a processing list
    T:dead                 list: payloads whose handler failed (on_failure="dead")
"""

from __future__ import annotations

from txmsg.redis._common import Script

__all__ = ["FAIL", "RECOVER", "REQUEUE"]

# KEYS: heartbeat, processing, queue, consumers   ARGV: consumer id, max, force
# Moves a consumer's processing list back to the consumption end of the queue
# (oldest item taken first) if its heartbeat is gone (or force = '1').
# Returns -1 when the consumer is alive, else the number of items moved.
RECOVER = Script(
    "list.recover",
    """
if ARGV[3] ~= '1' and redis.call('exists', KEYS[1]) == 1 then return -1 end
local n = 0
local limit = tonumber(ARGV[2])
while n < limit do
  local v = redis.call('lmove', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
  if not v then break end
  n = n + 1
end
if redis.call('llen', KEYS[2]) == 0 and ARGV[3] ~= '1' then
  redis.call('srem', KEYS[4], ARGV[1])
end
return n
""",
)

# KEYS: processing, dead   ARGV: payload
FAIL = Script(
    "list.fail",
    """
if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('rpush', KEYS[2], ARGV[1])
  return 1
end
return 0
""",
)

# KEYS: processing, queue   ARGV: payload   (back to the tail of the queue)
REQUEUE = Script(
    "list.requeue",
    """
if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('lpush', KEYS[2], ARGV[1])
  return 1
end
return 0
""",
)
