# -*- test-case-name: txmsg.test.test_redis_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.connection}, L{txmsg.redis._state} and
L{txmsg.redis._factory}.
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import Error as SSLError
from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txmsg.events import IEventSink
from txmsg.redis._deadline import DeadlineProxy, RedisCommandTimeout
from txmsg.redis._factory import CommandFactory, CommandProtocol
from txmsg.redis._state import ConnectionState, RedisConnectionFailed, RedisRefused
from txmsg.redis.connection import RedisConnection, RedisNotRunning
from txmsg.testing import RecordingEvents


def _ssl_error(reason: str) -> Exception:
    return SSLError([("SSL routines", "", reason)])


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
        self.conn._build_factory = lambda: self.fake  # type: ignore[method-assign]

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
        self.assertEqual(self.events.events[1][1]["reason"], "lost")
        self.assertEqual(self.events.events[0][1]["url"], "redis://:***@h:1/0")

    def test_broken_sink(self) -> None:
        """
        An event sink that raises is logged, not propagated.
        """

        @implementer(IEventSink)
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
        A lost connection whose TLS handshake failed errbacks the waiters at
        once with L{RedisConnectionFailed}, is logged once while it repeats,
        and C{describe()} shows it until a connection is usable.
        """
        d = self.state.when_connected()
        with capturedLogs() as events:
            self.state.failed(Failure(_ssl_error("certificate verify failed")))
            message = str(self.failureResultOf(d, RedisConnectionFailed).value)
            self.state.failed(Failure(_ssl_error("certificate verify failed")))
        self.assertTrue(message.startswith("TLS certificate verification failed"), message)
        self.assertEqual(
            [formatEvent(e) for e in events], ["Redis commands connection failed: " + message]
        )
        self.assertEqual(self.state.describe(), message)
        self.state.connected(1)
        self.state.lost()
        self.assertEqual(self.state.describe(), "redis://:***@h:1/0 not connected")

    def test_other_loss_is_no_failure(self) -> None:
        """
        A connection lost for another reason is no set-up failure: nothing
        is logged and the waiters keep waiting.
        """
        d = self.state.when_connected()
        with capturedLogs() as logged:
            self.state.failed(Failure(ConnectionLost()))
        self.assertNoResult(d)
        self.assertEqual(logged, [])
        self.assertIsNone(self.state.failure)

    def test_failed_while_stopping(self) -> None:
        """
        A failure while the owner closes the pool on purpose is not
        reported.
        """
        self.state.stopping = True
        d = self.state.when_connected()
        self.state.failed(Failure(_ssl_error("certificate verify failed")))
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
        with capturedLogs():
            f.connectionError("Redis error: could not auth: WRONGPASS")
        self.assertIsNone(f.deferred)
        self.assertIn("WRONGPASS", str(self.failureResultOf(d, RedisRefused).value))

    def test_factory_connection_error_after_tls_failure(self) -> None:
        """
        After a TLS failure, txredisapi's "Lost connection" message does not
        replace the real cause, and is not logged.
        """
        f = CommandFactory("x", 0, 1, True, convertNumbers=False)
        f.state = self.state
        with capturedLogs() as logged:
            self.state.failed(Failure(_ssl_error("certificate verify failed")))
            f.connectionError("Redis error: could not set dbid=0: Lost connection")
        assert self.state.failure is not None
        self.assertNotIsInstance(self.state.failure, RedisRefused)
        self.assertIn("TLS certificate verification failed", str(self.state.failure))
        self.assertEqual(len(logged), 1)

    def test_lost_during_setup(self) -> None:
        """
        A connection lost during its set-up for another reason (txredisapi
        gives up on it) is reported as lost, not as a refused login.
        """
        with capturedLogs():
            self.state.failed("Redis error: could not auth: Lost connection")
        failure = self.failureResultOf(self.state.when_connected(), RedisConnectionFailed)
        self.assertNotIsInstance(failure.value, RedisRefused)
        self.assertEqual(
            str(failure.value),
            "Redis at redis://:***@h:1/0 closed the connection while it was set up: "
            "could not auth: Lost connection",
        )


class CommandProtocolTests(SynchronousTestCase):
    """
    Tests for L{txmsg.redis._factory.CommandProtocol}.
    """

    def test_multi_with_bytes_replies(self) -> None:
        """
        MULTI works when replies are bytes (hiredis with charset None), which
        plain txredisapi rejects.
        """
        p = CommandProtocol(None)
        self.assertIs(p._tx_started(b"OK"), p)

    def test_tls_failure_reported(self) -> None:
        """
        A connection lost to a failed TLS verification tells the factory's
        state why, in one line naming the C{ca_certs} option, before
        txredisapi reports "Lost connection".
        """
        state = ConnectionState("commands", "rediss://:***@h:1/0")
        f = CommandFactory("x", 0, 1, True, convertNumbers=False)
        f.state = state
        p = f.buildProtocol(None)
        self.assertIsInstance(p, CommandProtocol)
        p.makeConnection(StringTransport())
        p.connectionLost(Failure(SSLError([("SSL routines", "", "certificate verify failed")])))
        message = str(state.failure)
        self.assertTrue(
            message.startswith("TLS certificate verification failed for rediss://:***@h:1/0"),
            message,
        )
        self.assertIn("?ca_certs=", message)
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


class RefusalTests(SynchronousTestCase):
    """
    A connection set-up Redis refuses (wrong password): named once, not
    retried, waiters failed at once with L{RedisRefused}.
    """

    WHY = (
        "Redis error: could not auth: WRONGPASS invalid username-password pair or user is disabled."
    )

    def test_factory_reports_refusal(self) -> None:
        """
        txredisapi's C{connectionError} reaches the state, which fails the
        waiters with one line naming the login refusal; txredisapi's own
        Deferred for it is handled (no "Unhandled error in Deferred").
        """
        state = ConnectionState("commands", "redis://:***@h:6379/0")
        waiter = state.when_connected()
        factory = CommandFactory("h:6379", 0, 1, True, password="bad")
        factory.state = state
        pending = factory.deferred
        with capturedLogs() as events:
            factory.connectionError(self.WHY)
        error = self.failureResultOf(waiter, RedisRefused).value
        self.assertEqual(
            str(error),
            "Redis at redis://:***@h:6379/0 refused the login: WRONGPASS invalid "
            "username-password pair or user is disabled; check the user name and "
            "password in the Redis URL",
        )
        self.assertIsNone(self.successResultOf(pending))
        self.assertEqual([e["log_level"] for e in events], [LogLevel.error])

    def test_later_waiters_fail_at_once(self) -> None:
        """
        After a refusal, C{when_connected} fails at once and C{describe}
        (shown by readiness checks) gives the refusal.
        """
        state = ConnectionState("commands", "redis://h:6379/3")
        with capturedLogs():
            state.failed("Redis error: could not set dbid=3: ERR DB index is out of range")
        self.failureResultOf(state.when_connected(), RedisRefused)
        self.assertEqual(
            state.describe(),
            "Redis at redis://h:6379/3 refused the connection: could not set dbid=3: "
            "ERR DB index is out of range",
        )
