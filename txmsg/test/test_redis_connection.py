# -*- test-case-name: txmsg.test.test_redis_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.connection}, L{txmsg.redis._state} and
L{txmsg.redis._factory}.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txmsg.redis._deadline import DeadlineProxy, RedisCommandTimeout
from txmsg.redis._factory import CommandFactory
from txmsg.redis._state import ConnectionState, RedisConnectionFailed
from txmsg.redis.connection import RedisConnection, RedisNotRunning
from txmsg.test._redis_fakes import RecordingEvents


class FakePoolFactory:
    """
    Records what RedisConnection does with its txredisapi factory.
    """

    def __init__(self) -> None:
        self.endpoints: list[Any] = []
        self.disconnected = 0
        self.handler = object()

    def startConnecting(self, endpoint: Any) -> None:
        self.endpoints.append(endpoint)

    def disconnect(self) -> Deferred[None]:
        self.disconnected += 1
        return succeed(None)


class FakeConn:
    """
    Enough of a txredisapi protocol for the factory's pool bookkeeping.
    """

    connected = 1

    def __init__(self) -> None:
        self.lost: Deferred[Any] = Deferred()

    def whenDisconnected(self) -> Deferred[Any]:
        return self.lost


class RedisConnectionTests(SynchronousTestCase):
    """
    Tests for L{RedisConnection}.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.events = RecordingEvents()
        self.conn = RedisConnection(
            "redis://:s3cret@10.0.0.5:6390/3", reactor=self.reactor, events=self.events
        )
        self.fake = FakePoolFactory()
        self.conn._build_factory = lambda: self.fake

    def test_interface(self) -> None:
        """
        L{RedisConnection} provides C{IService}.
        """
        verifyObject(IService, self.conn)

    def test_start_connects_endpoint(self) -> None:
        """
        Starting hands txredisapi's factory one endpoint for the URL's host
        and port, on the injected reactor.
        """
        self.conn.startService()
        (endpoint,) = self.fake.endpoints
        self.assertEqual((endpoint._hostText, endpoint._port), ("10.0.0.5", 6390))
        self.assertIs(endpoint._reactor, self.reactor)
        self.assertIsInstance(self.conn.handler, DeadlineProxy)

    def test_stop_disconnects(self) -> None:
        """
        Stopping calls the factory's C{disconnect()} (no second reconnect
        loop to stop) and the handler is gone.
        """
        self.conn.startService()
        self.successResultOf(self.conn.stopService())
        self.assertEqual(self.fake.disconnected, 1)
        self.assertRaises(RedisNotRunning, lambda: self.conn.handler)

    def test_handler_before_start(self) -> None:
        """
        Using the handler before the service runs is a clear error.
        """
        self.assertRaises(RedisNotRunning, lambda: self.conn.handler)

    def test_when_connected_timeout(self) -> None:
        """
        C{when_connected(timeout)} fails with L{RedisCommandTimeout} when no
        connection comes up in time; without the password in the message.
        """
        self.conn.startService()
        d = self.conn.when_connected(2)
        self.reactor.advance(2)
        f = self.failureResultOf(d, RedisCommandTimeout)
        self.assertNotIn("s3cret", str(f.value))

    def test_stop_fails_waiters(self) -> None:
        """
        Pending C{when_connected} Deferreds errback when the service stops.
        """
        self.conn.startService()
        d = self.conn.when_connected()
        self.conn.stopService()
        self.failureResultOf(d, RedisNotRunning)

    def test_real_factory_settings(self) -> None:
        """
        The real factory is lazy, converts no numbers, selects the URL's db
        and authenticates with its password.
        """
        conn = RedisConnection("redis://u:pw@h:1/3", decode_responses=False)
        f = conn._build_factory()
        self.assertEqual(
            (f.isLazy, f.convertNumbers, f.charset, f.dbid, f.password, f.username),
            (True, False, None, 3, "pw", "u"),
        )
        self.assertIs(f.state, conn.state)


class ConnectionStateTests(SynchronousTestCase):
    """
    Tests for L{ConnectionState} and the factory that drives it.
    """

    def setUp(self) -> None:
        self.events = RecordingEvents()
        self.state = ConnectionState("commands", "redis://:***@h:1/0", self.events)

    def test_events(self) -> None:
        """
        The first usable connection emits C{redis.connected}, losing the last
        one C{redis.lost}, with plain payloads.
        """
        d = self.state.when_connected()
        self.state.connected(1)
        self.successResultOf(d)
        self.state.lost()
        self.assertEqual(self.events.names(), ["redis.connected", "redis.lost"])
        self.assertEqual(self.events.dispatched[1][1]["reason"], "lost")
        self.assertEqual(self.events.dispatched[0][1]["url"], "redis://:***@h:1/0")

    def test_broken_sink(self) -> None:
        """
        An event sink that raises is logged, not propagated.
        """

        class Broken:
            def dispatch(self, *a, **kw):
                raise RuntimeError("sink")

        ConnectionState("pubsub", "u", Broken()).connected(1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_factory_transitions(self) -> None:
        """
        The command factory reports only the transitions none->some and
        some->none of its pool.
        """
        f = CommandFactory("x", None, 2, True, convertNumbers=False)
        f.state = self.state
        a, b = FakeConn(), FakeConn()
        f.addConnection(a)
        f.addConnection(b)
        f.delConnection(a)
        self.assertEqual(self.events.names(), ["redis.connected"])
        f.delConnection(b)
        self.assertEqual(self.events.names(), ["redis.connected", "redis.lost"])

    def test_describe(self) -> None:
        """
        C{describe()} says where and whether connected.
        """
        self.assertEqual(self.state.describe(), "redis://:***@h:1/0 not connected")
        self.state.connected(1)
        self.assertEqual(self.state.describe(), "redis://:***@h:1/0 connected")

    def test_failed(self) -> None:
        """
        C{failed(message)} errbacks the waiters at once with
        L{RedisConnectionFailed}, logs the message once while it repeats,
        and C{describe()} shows it until a connection is usable.
        """
        logged: list[str] = []
        self.state.log = Logger(observer=lambda e: logged.append(formatEvent(e)))
        d = self.state.when_connected()
        self.state.failed("TLS went wrong")
        self.assertEqual(
            str(self.failureResultOf(d, RedisConnectionFailed).value), "TLS went wrong"
        )
        self.state.failed("TLS went wrong")
        self.assertEqual(logged, ["Redis commands connection failed: TLS went wrong"])
        self.assertEqual(self.state.describe(), "redis://:***@h:1/0 not connected: TLS went wrong")
        self.state.connected(1)
        self.state.lost()
        self.assertEqual(self.state.describe(), "redis://:***@h:1/0 not connected")

    def test_failed_while_stopping(self) -> None:
        """
        A failure while the owner closes the pool on purpose is not
        reported.
        """
        self.state.stopping = True
        d = self.state.when_connected()
        self.state.failed("TLS went wrong")
        self.assertNoResult(d)
        self.assertIsNone(self.state.failure)

    def test_factory_connection_error(self) -> None:
        """
        When txredisapi gives up on a connection it could not set up, the
        factory reports its message to the state (failing the waiters) and
        leaves no failed Deferred behind (no "Unhandled error in Deferred").
        """
        f = CommandFactory("x", 0, 1, True, convertNumbers=False)
        f.state = self.state
        d = self.state.when_connected()
        f.connectionError("Redis error: could not auth: WRONGPASS")
        self.assertIsNone(f.deferred)
        self.assertIn("WRONGPASS", str(self.failureResultOf(d, RedisConnectionFailed).value))

    def test_factory_connection_error_after_tls_failure(self) -> None:
        """
        After a TLS failure, txredisapi's "Lost connection" message does not
        replace the real cause.
        """
        f = CommandFactory("x", 0, 1, True, convertNumbers=False)
        f.state = self.state
        self.state.failed("TLS certificate verification failed")
        f.connectionError("Redis error: could not set dbid=0: Lost connection")
        self.assertEqual(self.state.failure, "TLS certificate verification failed")


class CommandProtocolTests(SynchronousTestCase):
    """
    Tests for L{txmsg.redis._factory.CommandProtocol}.
    """

    def test_multi_with_bytes_replies(self) -> None:
        """
        MULTI works when replies are bytes (hiredis with charset None), which
        plain txredisapi rejects.
        """
        from txmsg.redis._factory import CommandProtocol

        p = CommandProtocol(None)
        self.assertIs(p._tx_started(b"OK"), p)

    def test_tls_failure_reported(self) -> None:
        """
        A connection lost to a failed TLS verification tells the factory's
        state why, in one line naming the C{ca_certs} option, before
        txredisapi reports "Lost connection".
        """
        from OpenSSL.SSL import Error as SSLError

        from txmsg.redis._factory import CommandProtocol

        state = ConnectionState("commands", "rediss://:***@h:1/0")
        f = CommandFactory("x", 0, 1, True, convertNumbers=False)
        f.state = state
        p = f.buildProtocol(None)
        self.assertIsInstance(p, CommandProtocol)
        p.makeConnection(StringTransport())
        p.connectionLost(Failure(SSLError([("SSL routines", "", "certificate verify failed")])))
        assert state.failure is not None
        self.assertTrue(
            state.failure.startswith("TLS certificate verification failed for rediss://:***@h:1/0"),
            state.failure,
        )
        self.assertIn("?ca_certs=", state.failure)
        self.assertIsNone(f.deferred)

    def test_other_loss_not_reported(self) -> None:
        """
        A connection lost for another reason is not a TLS failure.
        """
        state = ConnectionState("commands", "rediss://:***@h:1/0")
        f = CommandFactory("x", None, 1, True, convertNumbers=False)
        f.state = state
        p = f.buildProtocol(None)
        p.makeConnection(StringTransport())
        p.connectionLost(Failure(ConnectionLost()))
        self.assertIsNone(state.failure)
