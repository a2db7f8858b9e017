# -*- test-case-name: txmsg.test.test_amqp_setup_failure -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp._setup_failure} and L{AMQPConnection}'s handling of a
connection set-up the user must fix (a refused login, a failed TLS
handshake).
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import Error as SSLError
from pika.exceptions import (
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp import AMQPConnectionFailed, LoginRefused, NotConnectedError
from txmsg.amqp._setup_failure import describe_refusal, describe_setup_failure
from txmsg.amqp.url import parse_amqp_url
from txmsg.testing import MemoryBroker, RecordingEvents

ACCESS_REFUSED = ConnectionClosedByBroker(
    403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN."
)
URL = "amqp://guest:secret@broker.example:5672/%2F"
UNTRUSTED = SSLError([("SSL routines", "", "certificate verify failed")])
LOGIN = (
    "RabbitMQ refused the login for user 'guest' on vhost '/' at "
    "amqp://guest:***@broker.example:5672/%2F: check the user name and password in the AMQP URL"
)


class DescribeRefusalTests(SynchronousTestCase):
    """
    Tests for L{describe_refusal}.
    """

    def setUp(self) -> None:
        self.address = parse_amqp_url("amqp://guest:secret@broker.example:5672/%2F")

    def test_access_refused(self) -> None:
        """
        ACCESS_REFUSED (403) names the user and vhost, never the password.
        """
        self.assertEqual(describe_refusal(ACCESS_REFUSED, self.address), LOGIN)

    def test_probable_authentication_error(self) -> None:
        """
        A broker that just closes the socket during the login is a refused
        login too.
        """
        self.assertEqual(describe_refusal(ProbableAuthenticationError(), self.address), LOGIN)

    def test_vhost(self) -> None:
        """
        NOT_ALLOWED (530) and a probable access denial name the vhost.
        """
        address = parse_amqp_url("amqp://bob:pw@h/shop")
        for error in (ConnectionClosedByBroker(530, "NOT_ALLOWED"), ProbableAccessDeniedError()):
            message = describe_refusal(error, address)
            assert message is not None
            self.assertTrue(
                message.startswith("RabbitMQ refused access to vhost 'shop' for user 'bob'"),
                message,
            )
            self.assertNotIn("pw", message.replace("permissions", ""))

    def test_other(self) -> None:
        """
        Other failures are not refusals.
        """
        error = ConnectionClosedByBroker(320, "CONNECTION_FORCED")
        self.assertIsNone(describe_refusal(error, self.address))


class DescribeSetupFailureTests(SynchronousTestCase):
    """
    Tests for L{describe_setup_failure}.
    """

    def setUp(self) -> None:
        self.address = parse_amqp_url("amqp://guest:secret@broker.example:5672/%2F")

    def test_refusal(self) -> None:
        """
        A refused login is a L{LoginRefused}, which is a
        L{NotConnectedError}.
        """
        error = describe_setup_failure(ACCESS_REFUSED, self.address)
        self.assertIsInstance(error, LoginRefused)
        self.assertIsInstance(error, NotConnectedError)
        self.assertEqual(str(error), LOGIN)

    def test_tls(self) -> None:
        """
        A failed TLS handshake is an L{AMQPConnectionFailed} (not a refused
        login) naming the CA option, never the password.
        """
        error = describe_setup_failure(UNTRUSTED, self.address)
        self.assertIs(type(error), AMQPConnectionFailed)
        self.assertIn("not signed by a trusted CA", str(error))
        self.assertIn("'ca_certs'", str(error))
        self.assertNotIn("secret", str(error))

    def test_other(self) -> None:
        """
        A connection lost for another reason is not for the user to fix.
        """
        self.assertIsNone(describe_setup_failure(ConnectionLost(), self.address))


class ConnectionRefusalTests(SynchronousTestCase):
    """
    L{AMQPConnection} when its set-up fails for a reason the user must fix:
    RabbitMQ refuses the login, or the TLS handshake fails.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.events = RecordingEvents()
        self.broker = MemoryBroker(self.clock)
        self.stopped: list[bool] = []
        self.seen: list[str] = []

    def fail_twice(self, error: BaseException, **kw: object) -> tuple[Any, Any, list[Any]]:
        """
        A service (with a refusal observer recording into C{self.seen}, and
        a client service recording its stops into C{self.stopped}) whose
        set-up fails twice with C{error}.

        @return: the service, a C{when_ready()} Deferred from before the
            failures, and the logged events.
        """
        svc = self.broker.connection(url=URL, events=self.events, **kw)
        svc._client_service = type("CS", (), {"stopService": lambda _: self.stopped.append(True)})()
        svc.add_refusal_observer(self.seen.append)
        waiter = svc.when_ready()
        with capturedLogs() as logged:
            svc._protocol_failed(object(), error)
            svc._protocol_failed(object(), error)
            self.assertNoResult(waiter)
            self.clock.advance(0)
        return svc, waiter, list(logged)

    def test_refused_once_and_waiters_fail(self) -> None:
        """
        The refusal is logged once as an error, waiters fail with
        L{LoginRefused} on the next turn of the reactor (not inside pika's
        callback), later waiters fail at once, observers hear of it, and the
        service stops retrying.
        """
        svc, waiter, logged = self.fail_twice(ACCESS_REFUSED)
        self.assertEqual(str(self.failureResultOf(waiter, LoginRefused).value), LOGIN)
        self.failureResultOf(svc.when_ready(), LoginRefused)
        self.assertEqual(svc.refusal, LOGIN)
        self.assertEqual(self.seen, [LOGIN, LOGIN])
        self.assertEqual(self.stopped, [True, True])
        self.assertEqual([e["log_level"] for e in logged], [LogLevel.error])
        self.assertEqual(len(self.events.named("amqp.setup_failed")), 2)

    def test_retry_when_asked(self) -> None:
        """
        With C{retry_refused_login}, waiters keep waiting and a later
        successful login clears the refusal.
        """
        svc = self.broker.connection(url=URL, events=self.events, retry_refused_login=True)
        waiter = svc.when_ready()
        with capturedLogs():
            svc._protocol_failed(object(), ACCESS_REFUSED)
            self.clock.advance(0)
        self.assertNoResult(waiter)
        self.assertEqual(svc.refusal, LOGIN)
        conn = self.broker.connect(svc)
        self.assertIs(self.successResultOf(waiter), conn)
        self.assertIsNone(svc.refusal)

    def test_backoff_counts_failed_setups(self) -> None:
        """
        A connection whose set-up failed counts as a failed attempt for the
        retry policy, so refused logins back off.
        """
        svc = self.broker.connection(url=URL, events=self.events, retry_refused_login=True)
        with capturedLogs():
            svc._protocol_failed(object(), ACCESS_REFUSED)
            svc._protocol_failed(object(), ConnectionClosedByBroker(320, "x"))
        self.assertEqual(svc._setup_failures, 2)

    def test_tls_failure_keeps_retrying(self) -> None:
        """
        A failed TLS handshake fails the waiters (and later ones, at once)
        with L{AMQPConnectionFailed}, logged once, but the service keeps
        retrying and the refusal observers are not told; C{/ready} reads it
        from C{setup_failure}.
        """
        svc, waiter, logged = self.fail_twice(UNTRUSTED)
        error = self.failureResultOf(waiter, AMQPConnectionFailed).value
        self.assertNotIsInstance(error, LoginRefused)
        later = self.failureResultOf(svc.when_ready(), AMQPConnectionFailed).value
        self.assertEqual(str(later), str(error))
        self.assertEqual(str(svc.setup_failure), str(error))
        self.assertIsNone(svc.refusal)
        self.assertEqual((self.stopped, self.seen), ([], []))
        self.assertEqual([e["log_level"] for e in logged], [LogLevel.error])

    def test_tls_failure_waits_when_asked(self) -> None:
        """
        With C{retry_refused_login}, waiters keep waiting through a failed
        TLS handshake too, and nothing stops.
        """
        svc, waiter, _ = self.fail_twice(UNTRUSTED, retry_refused_login=True)
        self.assertNoResult(waiter)
        self.assertEqual((self.stopped, self.seen), ([], []))
