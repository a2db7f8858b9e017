# -*- test-case-name: txmsg.test.test_amqp_refusal -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp._refusal} and L{AMQPConnection}'s handling of a
login RabbitMQ refuses.
"""

from __future__ import annotations

from pika.exceptions import (
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp import LoginRefused
from txmsg.amqp._refusal import describe_refusal
from txmsg.amqp.url import parse_amqp_url
from txmsg.testing import MemoryBroker, RecordingEvents

ACCESS_REFUSED = ConnectionClosedByBroker(
    403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN."
)
URL = "amqp://guest:secret@broker.example:5672/%2F"
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


class ConnectionRefusalTests(SynchronousTestCase):
    """
    L{AMQPConnection} when RabbitMQ refuses the login.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.events = RecordingEvents()
        self.broker = MemoryBroker(self.clock)

    def test_refused_once_and_waiters_fail(self) -> None:
        """
        The refusal is logged once as an error, waiters fail with
        L{LoginRefused} on the next turn of the reactor (not inside pika's
        callback), later waiters fail at once, and observers hear of it.
        """
        svc = self.broker.connection(url=URL, events=self.events)
        seen: list[str] = []
        svc.add_refusal_observer(seen.append)
        waiter = svc.when_ready()
        with capturedLogs() as logged:
            svc._protocol_failed(object(), ACCESS_REFUSED)
            svc._protocol_failed(object(), ACCESS_REFUSED)
            self.assertNoResult(waiter)
            self.clock.advance(0)
        self.assertEqual(str(self.failureResultOf(waiter, LoginRefused).value), LOGIN)
        self.failureResultOf(svc.when_ready(), LoginRefused)
        self.assertEqual(svc.refusal, LOGIN)
        self.assertEqual(seen, [LOGIN, LOGIN])
        self.assertEqual([e["log_level"] for e in logged], [LogLevel.error])
        self.assertEqual(len(self.events.named("amqp.refused")), 2)

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
