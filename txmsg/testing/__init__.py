# -*- test-case-name: txmsg.test.test_testing -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Test your handlers and tasks without servers, with time under your control.

In-memory RabbitMQ and Redis that txmsg's I{real} services connect to, all
driven by one L{twisted.internet.task.Clock}:

    clock = Clock()
    amqp = memory_amqp(clock)            # a real AMQPConnection
    amqp.startService()
    amqp.broker.drop_connections()       # failure injection
    clock.advance(1)                     # it reconnects and replays topology

    redis = memory_redis(clock)          # a real RedisService
    redis.startService()
    redis.subscribe("news", on_news)
    redis.publish("news", "hello")
    clock.advance(0)                     # on_news runs

    h = WorkerHarness("myapp.tasks")     # the real WorkerService
    task_id = h.submit("add", 2, 3)
    h.result(task_id)                    # 5

Nothing happens until the clock runs: C{clock.advance(0)} lets messages
flow, C{clock.advance(n)} expires TTLs, fires retries and timeouts.

The same behaviour is checked against real RabbitMQ and Redis by the
contract suites (C{txmsg/test/test_contract_*.py} and
C{tests/test_contract_*.py}); see C{docs/testing.md} for what is modelled
and the known differences.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from txmsg.testing._amqp_broker import MemoryAMQPConnection, MemoryBroker
from txmsg.testing._amqp_state import BrokerMessage
from txmsg.testing._events import RecordingEvents, SyncThreadPool
from txmsg.testing._redis import MemoryRedisHandler
from txmsg.testing._redis_lua import LuaUnavailable
from txmsg.testing._redis_services import MemoryRedis
from txmsg.testing._worker import (
    DeadLetterRecord,
    TaskOutcome,
    WorkerHarness,
)

__all__ = [
    "BrokerMessage",
    "DeadLetterRecord",
    "LuaUnavailable",
    "MemoryAMQPConnection",
    "MemoryBroker",
    "MemoryRedis",
    "MemoryRedisHandler",
    "RecordingEvents",
    "SyncThreadPool",
    "TaskOutcome",
    "WorkerHarness",
    "memory_amqp",
    "memory_redis",
]


def memory_amqp(
    clock: Clock | None = None, broker: MemoryBroker | None = None, **kw: Any
) -> MemoryAMQPConnection:
    """
    A real L{txmsg.amqp.AMQPConnection} (not started) on an in-memory
    broker; the broker is its C{broker} attribute.

    @param clock: the clock (default: the broker's, or a new C{Clock}).
    @param broker: share a L{MemoryBroker} between connections.
    @param kw: passed to L{txmsg.amqp.AMQPConnection} (C{events},
        C{topology}, C{retry_policy}, ...).
    """
    if broker is None:
        broker = MemoryBroker(clock)
    if clock is not None:
        kw.setdefault("reactor", clock)
    return broker.connection(**kw)


def memory_redis(clock: Clock | None = None, redis: MemoryRedis | None = None, **kw: Any) -> Any:
    """
    A real L{txmsg.redis.RedisService} (not started) on an in-memory Redis;
    the Redis is its C{memory} attribute.

    @param clock: the clock (default: the Redis's, or a new C{Clock}).
    @param redis: share a L{MemoryRedis} between services.
    @param kw: C{events}, C{command_timeout}.
    """
    if redis is None:
        redis = MemoryRedis(clock)
    return redis.service(**kw)
