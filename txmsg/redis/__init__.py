# -*- test-case-name: txmsg.test.test_redis_exports -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
txmsg's Redis layer, on txredisapi 1.6.0.

  - L{RedisConnection}: the command connection (txredisapi's reconnecting
    pool, a deadline on every command, explicit types, state events);
  - L{PubSub}: subscriptions (channels and patterns) that survive reconnects,
    with per-subscription decoding and a documented delivery model;
  - L{publish}: PUBLISH with the same encoders;
  - L{KeyExpiry}: callbacks on expired keys (keyspace notifications);
  - L{ControlListener} / L{send_control}: the RQ-compatible worker control
    channel C{rq:pubsub:<name>};
  - L{RedisService}: all of the above behind one C{MultiService};
  - L{Cache}: TTL cache with safe serializers and stampede protection;
  - L{Lock}: distributed lock (owner token, atomic release/extend);
  - L{DelayQueue} / L{DelayPoller}: scheduled items, claimed atomically;
  - L{ReliableQueue} / L{ListConsumer}: at-least-once list queue;
  - L{parse_redis_url}: C{redis://}, C{rediss://}, C{unix://} URLs.

Importing this package does not import txredisapi (which would install the
default reactor): that happens when a service starts.
"""

from txmsg.redis._deadline import RedisCommandTimeout
from txmsg.redis._delivery import Message, Subscription, SubscriptionCancelled
from txmsg.redis._setup_failure import RedisConnectionFailed, RedisRefused
from txmsg.redis.cache import Cache, CacheDecodeError
from txmsg.redis.connection import RedisConnection, RedisNotRunning
from txmsg.redis.control import (
    ControlCommand,
    ControlListener,
    ControlTimeout,
    MalformedCommand,
    parse_command,
    send_control,
)
from txmsg.redis.delay_queue import DelayedItem, DelayPoller, DelayQueue
from txmsg.redis.keyspace import ExpiredKey, KeyExpiry
from txmsg.redis.list_queue import ListConsumer, ReliableQueue
from txmsg.redis.lock import Lock, LockError, LockNotAcquired, LockNotOwned
from txmsg.redis.pubsub import PubSub, publish
from txmsg.redis.service import RedisService
from txmsg.redis.url import InvalidRedisURL, RedisURL, parse_redis_url

__all__ = [
    "Cache",
    "CacheDecodeError",
    "DelayPoller",
    "DelayQueue",
    "DelayedItem",
    "ListConsumer",
    "Lock",
    "LockError",
    "LockNotAcquired",
    "LockNotOwned",
    "ReliableQueue",
    "ControlCommand",
    "ControlListener",
    "ControlTimeout",
    "ExpiredKey",
    "InvalidRedisURL",
    "KeyExpiry",
    "MalformedCommand",
    "Message",
    "PubSub",
    "RedisCommandTimeout",
    "RedisConnection",
    "RedisConnectionFailed",
    "RedisNotRunning",
    "RedisRefused",
    "RedisService",
    "RedisURL",
    "Subscription",
    "SubscriptionCancelled",
    "parse_command",
    "parse_redis_url",
    "publish",
    "send_control",
]
