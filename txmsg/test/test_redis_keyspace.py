# -*- test-case-name: txmsg.test.test_redis_keyspace -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.keyspace}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.keyspace import ExpiredKey, KeyExpiry, merge_notify_flags
from txmsg.redis.pubsub import PubSub
from txmsg.redis.url import parse_redis_url
from txmsg.test._redis_fakes import array, command, connect_pubsub
from txmsg.testing import RecordingEvents


class ConfigHandler:
    """
    Answers CONFIG GET/SET like a Redis server (or refuses).
    """

    def __init__(self, flags: str, forbidden: bool = False) -> None:
        self.flags = flags
        self.forbidden = forbidden
        self.sets: list[str] = []

    def execute_command(self, *args: Any) -> Deferred[Any]:
        if self.forbidden:
            return fail(Exception("ERR unknown command 'CONFIG'"))
        if args[:2] == ("CONFIG", "GET"):
            return succeed(["notify-keyspace-events", self.flags])
        self.sets.append(args[3])
        self.flags = args[3]
        return succeed("OK")


class FakeConnection:
    def __init__(self, handler: ConfigHandler) -> None:
        self.handler = handler
        self.url = parse_redis_url("redis://:pw@h:1/2")


class MergeFlagsTests(SynchronousTestCase):
    """
    Tests for L{merge_notify_flags}.
    """

    def test_merge(self) -> None:
        """
        C{E} and C{x} are added to existing flags; C{A} counts as C{x};
        nothing changes when both are present.
        """
        self.assertEqual(merge_notify_flags(""), "Ex")
        self.assertEqual(merge_notify_flags("Kg"), "KgEx")
        self.assertEqual(merge_notify_flags("KA"), "KAE")
        self.assertIsNone(merge_notify_flags("xE"))
        self.assertIsNone(merge_notify_flags("AKE"))


class KeyExpiryTests(SynchronousTestCase):
    """
    Tests for L{KeyExpiry}.
    """

    def setUp(self) -> None:
        self.events = RecordingEvents()
        self.pubsub = PubSub("redis://h:1/2", reactor=Clock(), events=self.events)
        self.handler = ConfigHandler("K")
        self.expiry = KeyExpiry(self.pubsub, FakeConnection(self.handler), events=self.events)
        self.got: list[ExpiredKey] = []

    def test_subscribes_db_channel(self) -> None:
        """
        A callback subscribes to C{__keyevent@<db>__:expired}, by default for
        the connection URL's db.
        """
        self.expiry.on_expired("order:*", self.got.append)
        self.expiry.on_expired("x", self.got.append, db=5)
        proto, transport = connect_pubsub(self.pubsub)
        self.assertEqual(
            transport.value(),
            command("SUBSCRIBE", "__keyevent@2__:expired", "__keyevent@5__:expired"),
        )

    def test_callbacks_by_glob(self) -> None:
        """
        Only callbacks whose glob matches the expired key are called.
        """
        self.expiry.on_expired("order:*", self.got.append)
        other = []
        self.expiry.on_expired("user:*", other.append)
        self.expiry.on_expired("order:*", event="order.expired")
        proto, _ = connect_pubsub(self.pubsub)
        proto.dataReceived(array("message", "__keyevent@2__:expired", "order:42"))
        self.assertEqual(self.got, [ExpiredKey("order:42", 2, b"order:42")])
        self.assertEqual(other, [])
        self.assertIn("order.expired", self.events.names())

    def test_enables_notifications_on_connect(self) -> None:
        """
        On connect, C{Ex} is merged into the server's flags with CONFIG SET.
        """
        self.expiry.on_expired("k*", self.got.append)
        connect_pubsub(self.pubsub)
        self.assertEqual(self.handler.sets, ["KEx"])
        self.assertTrue(self.expiry.notifications_enabled)
        connect_pubsub(self.pubsub)
        self.assertEqual(self.handler.sets, ["KEx"])

    def test_registered_after_connect(self) -> None:
        """
        A first callback registered once the subscriber connection is ready
        (its connect hooks have run) checks the flags at once, even while
        the connection state has not caught up yet.
        """
        connect_pubsub(self.pubsub)
        self.pubsub.state.is_connected = False  # the state lags behind
        self.assertTrue(self.pubsub.ready)
        self.expiry.on_expired("k*", self.got.append)
        self.assertEqual(self.handler.sets, ["KEx"])
        self.assertTrue(self.expiry.notifications_enabled)

    def test_registered_before_connect(self) -> None:
        """
        Registered before any connection, the check waits for the
        connection's hooks and happens once.
        """
        self.assertFalse(self.pubsub.ready)
        self.expiry.on_expired("k*", self.got.append)
        self.assertEqual(self.handler.sets, [])
        connect_pubsub(self.pubsub)
        self.assertEqual(self.handler.sets, ["KEx"])

    def test_forbidden_warns(self) -> None:
        """
        When CONFIG is refused, a warning says callbacks won't fire and what
        to set; nothing raises.
        """
        self.handler.forbidden = True
        # (typed for TestCase, works on any SynchronousTestCase)
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        self.expiry.on_expired("k*", self.got.append)
        connect_pubsub(self.pubsub)
        self.assertFalse(self.expiry.notifications_enabled)
        texts = [e.get("log_format", "") for e in observer]
        self.assertTrue(any("notify-keyspace-events Ex" in t for t in texts))

    def test_configure_false_only_warns(self) -> None:
        """
        With C{configure=False} the flags are checked, never changed.
        """
        expiry = KeyExpiry(self.pubsub, FakeConnection(self.handler), configure=False)
        expiry.on_expired("k*", self.got.append)
        self.assertFalse(self.successResultOf(expiry.ensure_notifications()))
        self.assertEqual(self.handler.sets, [])

    def test_cancel(self) -> None:
        """
        Cancelling the last callback of a db unsubscribes its channel.
        """
        reg = self.expiry.on_expired("k*", self.got.append)
        proto, transport = connect_pubsub(self.pubsub)
        transport.clear()
        reg.cancel()
        self.assertEqual(transport.value(), command("UNSUBSCRIBE", "__keyevent@2__:expired"))
