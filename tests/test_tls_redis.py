# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: txmsg over TLS to a private redis-server (C{--tls-port},
C{--port 0}) with a CA the test generates: a trusted CA, an untrusted one,
and client certificates.  They fail (never skip) without redis-server.
"""

from __future__ import annotations

import subprocess
from urllib.parse import quote

from twisted.internet.threads import deferToThread

from tests._process import script
from tests._redis_support import wait_for
from tests._tls_support import OneLineErrors, TestPKI, TLSRedisServer
from txmsg.redis import RedisConnectionFailed, RedisService

PASSWORD = "s3cret-tls-pw"


class _TLSRedisCase(OneLineErrors):
    """
    Starts a TLS redis-server (password protected) with fresh certificates
    per test; C{auth_clients} is its C{--tls-auth-clients}.
    """

    timeout = 60
    auth_clients = "no"

    def setUp(self) -> None:
        super().setUp()
        self.pki = TestPKI()
        self.addCleanup(self.pki.cleanup)
        self.server = TLSRedisServer(self.pki, self.auth_clients, password=PASSWORD)
        self.server.start()
        self.addCleanup(self.server.cleanup)

    def url(self, **query: str) -> str:
        """The server's URL (with its password) and C{query}."""
        url = self.server.url
        if query:
            url += "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())
        return url

    def service(self, url: str) -> RedisService:
        """A started L{RedisService}, stopped in cleanup."""
        service = RedisService(url)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    async def assertConnectFails(self, url: str, *expected: str) -> None:
        """
        Connecting to C{url} fails at once (well before the 20 s allowed)
        with one clear L{RedisConnectionFailed} containing C{expected},
        logged once per connection (the service has a command and a pub/sub
        connection, which fail independently), without the password.
        """
        service = self.service(url)
        message = await self.failure_line(service.when_connected(20), RedisConnectionFailed, 10)
        self.assertLine(message, expected, ":***@")
        self.assertNotIn(PASSWORD, message)
        roles = [e.split(" connection failed: ")[0] for e in self.errors]
        self.assertEqual(len(roles), len(set(roles)), self.errors)  # once per connection
        self.assertTrue(any(message in e for e in self.errors), self.errors)

    async def assertWorks(self, url: str) -> None:
        """Commands and pub/sub work over C{url}."""
        redis = self.service(url)
        await redis.when_connected(10)
        await redis.handler.set("txmsg-tls-key", "value")
        self.assertEqual(await redis.handler.get("txmsg-tls-key"), "value")
        got: list[object] = []
        sub = redis.subscribe("txmsg-tls-chan", got.append, decode="text")
        await sub.when_active()
        self.assertEqual(await redis.publish("txmsg-tls-chan", "over tls"), 1)
        await wait_for(lambda: got, 10)
        self.assertEqual(got[0].data, "over tls")  # type: ignore[attr-defined]
        self.assertEqual(self.errors, [])

    async def assertCLIFailsWith(self, args: list[str], *expected: str) -> None:
        """
        C{txmsg ARGS} exits non-zero with one stderr line containing
        C{expected}, no traceback, no password.
        """
        await self.assertCLIFails(args, expected, ":***@", PASSWORD)


class ServerCertificateTests(_TLSRedisCase):
    """
    C{rediss://} to a server that does not ask for client certificates.
    """

    async def test_trusted_ca(self) -> None:
        """
        With C{?ca_certs=} naming the CA that signed the server's
        certificate, commands and pub/sub work.
        """
        await self.assertWorks(self.url(ca_certs=self.pki.ca))

    async def test_untrusted_platform_store(self) -> None:
        """
        Without C{ca_certs} the platform's trust store does not know the
        test CA: the connection fails at once with one line naming the TLS
        verification failure and the C{ca_certs} option.
        """
        await self.assertConnectFails(
            self.url(),
            "TLS certificate verification failed",
            "not signed by a trusted CA",
            "?ca_certs=",
        )

    async def test_untrusted_other_ca(self) -> None:
        """
        A C{ca_certs} file with another CA fails the same way.
        """
        await self.assertConnectFails(
            self.url(ca_certs=self.pki.other_ca),
            "TLS certificate verification failed",
            "?ca_certs=",
        )

    async def test_untrusted_cli(self) -> None:
        """
        C{txmsg workers} and C{txmsg control} print one line naming the TLS
        verification failure and the C{ca_certs} option, exit non-zero and
        show no traceback and no password.
        """
        url = self.url()
        expected = ("TLS certificate verification failed", "?ca_certs=")
        await self.assertCLIFailsWith(["workers", "--redis", url, "--timeout", "20"], *expected)
        await self.assertCLIFailsWith(
            ["control", "--redis", url, "--timeout", "20", "some-worker", "status"], *expected
        )

    async def test_trusted_cli(self) -> None:
        """
        With the CA, C{txmsg workers} reads the (empty) registry.
        """
        r = await deferToThread(
            subprocess.run,
            [script("txmsg"), "workers", "--redis", self.url(ca_certs=self.pki.ca)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertIn("no workers registered", r.stdout)


class ClientCertificateTests(_TLSRedisCase):
    """
    C{rediss://} to a server started with C{--tls-auth-clients yes}.
    """

    auth_clients = "yes"

    async def test_with_client_certificate(self) -> None:
        """
        With C{certfile}/C{keyfile} of a certificate from the server's CA,
        commands and pub/sub work.
        """
        await self.assertWorks(
            self.url(
                ca_certs=self.pki.ca, certfile=self.pki.client_cert, keyfile=self.pki.client_key
            )
        )

    async def test_without_client_certificate(self) -> None:
        """
        Without a client certificate the connection fails at once with one
        line saying the server requires one and naming C{certfile}.
        """
        await self.assertConnectFails(
            self.url(ca_certs=self.pki.ca), "requires a client certificate", "certfile="
        )

    async def test_untrusted_client_certificate(self) -> None:
        """
        A client certificate from a CA the server does not trust is
        rejected, in one line that says so.
        """
        await self.assertConnectFails(
            self.url(
                ca_certs=self.pki.ca, certfile=self.pki.rogue_cert, keyfile=self.pki.rogue_key
            ),
            "rejected the client certificate",
        )

    async def test_without_client_certificate_cli(self) -> None:
        """
        C{txmsg workers} without a client certificate prints one line
        naming the missing client certificate.
        """
        await self.assertCLIFailsWith(
            ["workers", "--redis", self.url(ca_certs=self.pki.ca), "--timeout", "20"],
            "requires a client certificate",
            "certfile=",
        )
