# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: txmsg over TLS (C{amqps://}) to a private RabbitMQ node
with a TLS listener and a CA the test generates: a trusted CA, an untrusted
one, and client certificates.  Each class shares one node (it takes a few
seconds to start) on spare loopback ports; the shared broker on 5672 is never
touched.
"""

from __future__ import annotations

import atexit

from twisted.application.internet import backoffPolicy
from twisted.internet import reactor

from tests._amqp_support import unique
from tests._redis_support import wait_for
from tests._tls_support import OneLineErrors, TestPKI, TLSBroker
from txmsg.amqp import AMQPConnection, NotConnectedError, Queue

_node: tuple[bool, TestPKI, TLSBroker] | None = None


def _stop_node() -> None:
    global _node
    if _node is not None:
        _, pki, broker = _node
        _node = None
        try:
            broker.stop()
        finally:
            pki.cleanup()


def tls_node(require_client_cert: bool) -> tuple[TestPKI, TLSBroker]:
    """
    The private TLS node (and its certificates) with
    C{fail_if_no_peer_cert = require_client_cert}, started on first use and
    shared by the tests that ask for the same setting; a node with the
    other setting is stopped first, and the last one at exit.  (trial has
    no per-class fixtures, and a node takes a few seconds to start.)
    """
    global _node
    if _node is not None and _node[0] == require_client_cert:
        return _node[1], _node[2]
    _stop_node()
    pki = TestPKI()
    broker = TLSBroker(pki, fail_if_no_peer_cert=require_client_cert)
    try:
        broker.start()
    except BaseException:
        broker.stop()
        pki.cleanup()
        raise
    _node = (require_client_cert, pki, broker)
    return pki, broker


atexit.register(_stop_node)
_finished: dict[type, int] = {}


def _test_finished(case: type) -> None:
    """
    Stop the node once every test of C{case} has run (when only some of
    them run, at exit).
    """
    _finished[case] = _finished.get(case, 0) + 1
    if _finished[case] == len([n for n in dir(case) if n.startswith("test_")]):
        _stop_node()


class _TLSBrokerCase(OneLineErrors):
    """
    Tests against the private TLS node of L{tls_node};
    C{require_client_cert} is its C{ssl_options.fail_if_no_peer_cert}.
    """

    timeout = 120
    require_client_cert = False

    def setUp(self) -> None:
        super().setUp()
        self.pki, self.broker = tls_node(self.require_client_cert)
        self.addCleanup(_test_finished, type(self))

    def connection(self, url: str) -> AMQPConnection:
        """A started L{AMQPConnection}, stopped in cleanup."""
        conn = AMQPConnection(
            url,
            reactor=reactor,
            connection_name=unique("txmsg-tls"),
            retry_policy=backoffPolicy(initialDelay=0.5, maxDelay=2.0),
        )
        conn.startService()
        self.addCleanup(conn.stopService)
        return conn

    async def assertWorks(self, url: str) -> None:
        """A message published over C{url} is consumed over C{url}."""
        queue = Queue(unique("txmsg-tls-q"), durable=False, auto_delete=True)
        conn = self.connection(url)
        conn.declare(queue)
        await conn.when_ready(20)
        got: list[bytes] = []
        conn.consume(queue, lambda delivery: got.append(delivery.body))
        await conn.publish("", queue.name, b"over tls", timeout=15)
        await wait_for(lambda: got, 15)
        self.assertEqual(got, [b"over tls"])
        self.assertEqual(self.errors, [])

    async def assertConnectFails(self, url: str, *expected: str) -> None:
        """
        Connecting to C{url} fails well before the 30 s allowed with one
        clear L{NotConnectedError} containing C{expected}, logged once (the
        service keeps retrying, and a retry fails the same way without
        being logged again), without the password.
        """
        conn = self.connection(url)
        message = await self.failure_line(conn.when_ready(30), NotConnectedError, 15)
        self.assertLine(message, expected, "guest:***@")
        again = await self.failure_line(conn.when_ready(30), NotConnectedError, 15)
        self.assertEqual(again, message)
        self.assertEqual(len(self.errors), 1, self.errors)
        self.assertIn(message, self.errors[0])

    async def assertCLIFailsWith(self, url: str, *expected: str) -> None:
        """
        C{txmsg send --amqp URL} exits non-zero with one stderr line
        containing C{expected}, and no traceback.
        """
        args = ["send", "--amqp", url, "--timeout", "30", "add", "1", "2"]
        await self.assertCLIFails(args, expected, "guest:***@", "guest:guest@")


class ServerCertificateTests(_TLSBrokerCase):
    """
    C{amqps://} to a node that does not require client certificates.
    """

    async def test_trusted_ca(self) -> None:
        """
        With C{ssl_options={'ca_certs': ...}} naming the CA that signed the
        node's certificate, publishing and consuming work.
        """
        await self.assertWorks(self.broker.tls_url(ca_certs=self.pki.ca))

    async def test_untrusted_platform_store(self) -> None:
        """
        Without C{ca_certs} the platform's trust store does not know the
        test CA: one line names the TLS verification failure and the
        C{ssl_options} C{ca_certs} option.
        """
        await self.assertConnectFails(
            self.broker.tls_url(),
            "TLS certificate verification failed",
            "not signed by a trusted CA",
            "'ca_certs'",
        )

    async def test_untrusted_other_ca(self) -> None:
        """
        A C{ca_certs} file with another CA fails the same way.
        """
        await self.assertConnectFails(
            self.broker.tls_url(ca_certs=self.pki.other_ca),
            "TLS certificate verification failed",
            "'ca_certs'",
        )

    async def test_untrusted_cli(self) -> None:
        """
        C{txmsg send} to the node without its CA prints one line naming the
        TLS verification failure and the CA option, and exits non-zero.
        """
        await self.assertCLIFailsWith(
            self.broker.tls_url(), "TLS certificate verification failed", "'ca_certs'"
        )


class ClientCertificateTests(_TLSBrokerCase):
    """
    C{amqps://} to a node with C{ssl_options.fail_if_no_peer_cert = true}.
    """

    require_client_cert = True

    async def test_with_client_certificate(self) -> None:
        """
        With C{certfile}/C{keyfile} of a certificate from the node's CA,
        publishing and consuming work.
        """
        await self.assertWorks(
            self.broker.tls_url(
                ca_certs=self.pki.ca, certfile=self.pki.client_cert, keyfile=self.pki.client_key
            )
        )

    async def test_without_client_certificate(self) -> None:
        """
        Without a client certificate one line says the server requires one
        and names C{certfile}.
        """
        await self.assertConnectFails(
            self.broker.tls_url(ca_certs=self.pki.ca),
            "requires a client certificate",
            "'certfile'",
        )

    async def test_untrusted_client_certificate(self) -> None:
        """
        A client certificate from a CA the node does not trust is rejected,
        in one line that says so.
        """
        await self.assertConnectFails(
            self.broker.tls_url(
                ca_certs=self.pki.ca, certfile=self.pki.rogue_cert, keyfile=self.pki.rogue_key
            ),
            "rejected the client certificate",
        )

    async def test_without_client_certificate_cli(self) -> None:
        """
        C{txmsg send} without a client certificate prints one line naming
        the missing client certificate.
        """
        await self.assertCLIFailsWith(
            self.broker.tls_url(ca_certs=self.pki.ca), "requires a client certificate", "'certfile'"
        )
