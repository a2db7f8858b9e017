# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Testing a Redis subscriber callback without Redis: the real RedisService
runs on an in-memory Redis and a clock.  Run with
C{python -m twisted.trial examples.test_example_subscriber}.
"""

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.testing import memory_redis


class PriceWatcher:
    """
    The code under test: keeps the last price per symbol from
    C{prices.<symbol>} messages and alerts on C{alerts} above a limit.
    """

    def __init__(self, redis, limit):  # type: ignore[no-untyped-def]
        self.redis = redis
        self.limit = limit
        self.prices = {}
        redis.psubscribe("prices.*", self.on_price, decode="json")

    def on_price(self, message):  # type: ignore[no-untyped-def]
        symbol = message.channel.split(".", 1)[1]
        self.prices[symbol] = message.data["price"]
        if message.data["price"] > self.limit:
            return self.redis.publish("alerts", json.dumps({"symbol": symbol}))
        return None


class PriceWatcherTests(SynchronousTestCase):
    """L{PriceWatcher} on an in-memory Redis."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = memory_redis(self.clock)
        self.redis.startService()
        self.watcher = PriceWatcher(self.redis, limit=100)
        self.alerts = []
        self.redis.subscribe("alerts", self.alerts.append, decode="json")
        self.clock.advance(0)  # subscriptions confirmed

    def tearDown(self) -> None:
        self.successResultOf(self.redis.stopService())

    def test_price_recorded(self) -> None:
        """A price message updates the symbol's price; no alert below the limit."""
        self.redis.publish("prices.ACME", {"price": 42})
        self.clock.advance(0)
        self.assertEqual(self.watcher.prices, {"ACME": 42})
        self.assertEqual(self.alerts, [])

    def test_alert(self) -> None:
        """A price above the limit publishes an alert."""
        self.redis.publish("prices.ACME", {"price": 142})
        self.clock.advance(0)
        self.assertEqual([m.data for m in self.alerts], [{"symbol": "ACME"}])

    def test_survives_reconnect(self) -> None:
        """After Redis drops the connection, the subscription comes back."""
        self.redis.memory.drop_connections()
        self.clock.advance(1)  # reconnect and re-subscribe
        self.redis.publish("prices.ACME", {"price": 7})
        self.clock.advance(0)
        self.assertEqual(self.watcher.prices, {"ACME": 7})
