# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: expired-key callbacks on a Redis server the test owns
(so the shared server's configuration is left alone).
"""

from __future__ import annotations

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from tests._redis_support import RedisServer, redis_py, wait_for
from txmsg.redis import RedisService


class KeyExpiryTests(TestCase):
    """
    Tests for L{KeyExpiry} against real servers.
    """

    timeout = 60

    async def test_expired_key_callback(self) -> None:
        """
        With notifications off on the server, txmsg enables them and the
        callback fires for an expired key matching the glob, not for others.
        """
        server = RedisServer().start()
        self.addCleanup(server.cleanup)
        peer = redis_py(server.url)
        self.assertEqual(peer.config_get("notify-keyspace-events")["notify-keyspace-events"], "")
        redis = RedisService(server.url)
        got, other = [], []
        redis.on_expired("order:*", got.append)
        redis.on_expired("user:*", other.append)
        redis.startService()
        self.addCleanup(redis.stopService)
        await wait_for(lambda: redis.expiry.notifications_enabled)
        flags = peer.config_get("notify-keyspace-events")["notify-keyspace-events"]
        self.assertTrue("E" in flags and "x" in flags, flags)
        await redis.when_connected(10)
        await redis.handler.set("order:7", "unpaid", pexpire=100)
        await redis.handler.set("misc:1", "x", pexpire=100)
        await wait_for(lambda: got, timeout=15)
        self.assertEqual((got[0].key, got[0].db), ("order:7", 0))
        self.assertEqual(other, [])

    async def test_config_forbidden_warns(self) -> None:
        """
        When the server refuses CONFIG, a clear warning is logged and
        notifications_enabled is False.
        """
        server = RedisServer("--rename-command", "CONFIG", "").start()
        self.addCleanup(server.cleanup)
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        redis = RedisService(server.url)
        redis.on_expired("k*", lambda e: None)
        redis.startService()
        self.addCleanup(redis.stopService)
        await wait_for(lambda: redis.expiry.notifications_enabled is False)
        warnings = [e for e in observer if "Cannot enable expired-key" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
