# -*- test-case-name: txmsg.test.test_redact -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg._redact}.
"""

from twisted.trial.unittest import SynchronousTestCase

from txmsg._redact import redact_url


class RedactURLTests(SynchronousTestCase):
    """
    Tests for L{redact_url}.
    """

    def test_password_replaced(self) -> None:
        """
        The password of a URL is replaced by C{***}; user, host, port, path stay.
        """
        self.assertEqual(
            redact_url("amqp://guest:s3cret@example.com:5672/vh"),
            "amqp://guest:***@example.com:5672/vh",
        )

    def test_password_only(self) -> None:
        """
        A Redis URL with a password and no user keeps an empty user part.
        """
        self.assertEqual(
            redact_url("redis://:pw@127.0.0.1:6379/2"), "redis://:***@127.0.0.1:6379/2"
        )

    def test_ipv6_host(self) -> None:
        """
        An IPv6 host keeps its brackets.
        """
        self.assertEqual(redact_url("redis://u:pw@[::1]:6379/0"), "redis://u:***@[::1]:6379/0")

    def test_no_password_unchanged(self) -> None:
        """
        A URL without a password is returned unchanged.
        """
        for url in [
            "redis://127.0.0.1:6379/0",
            "amqp://guest@h/",
            "unix:///tmp/r.sock",
        ]:
            self.assertEqual(redact_url(url), url)

    def test_secret_never_survives(self) -> None:
        """
        Whatever the URL shape, the password text does not appear in the result.
        """
        for url in [
            "rediss://user:topsecret@h:6380/1?ssl_cert_reqs=none",
            "amqps://a:topsecret@h/%2f?heartbeat=30",
        ]:
            self.assertNotIn("topsecret", redact_url(url))

    def test_bad_port(self) -> None:
        """
        A URL whose port is not a number is still redacted, not an error.
        """
        self.assertEqual(
            redact_url("redis://u:pw@host:notaport/0"), "redis://u:***@host:notaport/0"
        )

    def test_password_with_at_sign(self) -> None:
        """
        A password containing C{@} (unescaped) is removed whole.
        """
        self.assertNotIn("p@ss", redact_url("amqp://u:p@ss@host/"))

    def test_query_passwords(self) -> None:
        """
        A key passphrase in C{ssl_options} (plain or percent-encoded) and a
        C{password=} query argument are replaced by C{***}; the rest of the
        query stays readable.
        """
        self.assertEqual(
            redact_url("amqps://u:pw@h/%2F?ssl_options={'certfile':'/c.pem','password':'k3y'}"),
            "amqps://u:***@h/%2F?ssl_options={'certfile':'/c.pem','password':'***'}",
        )
        encoded = "amqps://h/%2F?ssl_options=%7B%27password%27%3A%20%27k3y%27%7D&heartbeat=5"
        self.assertEqual(
            redact_url(encoded), "amqps://h/%2F?ssl_options={'password': '***'}&heartbeat=5"
        )
        self.assertEqual(
            redact_url("rediss://h/0?password=k3y&ca_certs=/ca.pem"),
            "rediss://h/0?password=***&ca_certs=/ca.pem",
        )
