# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.url}.
"""

from urllib.parse import quote

from twisted.internet.endpoints import HostnameEndpoint, _WrapperEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.url import DEFAULT_AMQP_URL, amqp_url, parse_amqp_url


class AMQPURLTests(SynchronousTestCase):
    """Tests for L{amqp_url} and L{parse_amqp_url}."""

    def test_default(self) -> None:
        """Without an argument or environment variable the local guest URL is used."""
        self.assertEqual(amqp_url(None, {}), DEFAULT_AMQP_URL)

    def test_environment(self) -> None:
        """C{TXMSG_AMQP_URL} is used when no URL is given, and an argument wins over it."""
        env = {"TXMSG_AMQP_URL": "amqp://a:b@h/v"}
        self.assertEqual(amqp_url(None, env), "amqp://a:b@h/v")
        self.assertEqual(amqp_url("amqp://x@y/", env), "amqp://x@y/")

    def test_parse_amqp(self) -> None:
        """Host, port, vhost, credentials and heartbeat come from the URL."""
        a = parse_amqp_url("amqp://user:pw@rabbit.example:5673/my%2Fvh?heartbeat=7")
        self.assertEqual((a.host, a.port, a.tls), ("rabbit.example", 5673, False))
        p = a.parameters("conn-1")
        self.assertEqual(p.virtual_host, "my/vh")
        self.assertEqual(p.heartbeat, 7)
        self.assertEqual((p.credentials.username, p.credentials.password), ("user", "pw"))
        self.assertEqual(p.client_properties["connection_name"], "conn-1")
        self.assertIsNone(p.ssl_options)

    def test_parse_amqps_default_port(self) -> None:
        """C{amqps://} means TLS on port 5671 unless a port is given."""
        a = parse_amqp_url("amqps://u:p@secure.example/%2F")
        self.assertEqual((a.port, a.tls), (5671, True))

    def test_endpoints(self) -> None:
        """C{amqp} gives a hostname endpoint; C{amqps} wraps it in TLS."""
        r = MemoryReactorClock()
        self.assertIsInstance(parse_amqp_url("amqp://h/").endpoint(r), HostnameEndpoint)
        self.assertIsInstance(parse_amqp_url("amqps://h/").endpoint(r), _WrapperEndpoint)

    def test_unreadable_tls_file(self) -> None:
        """
        An C{ssl_options} file that cannot be read is a URL error naming the
        file, without the password.
        """
        missing = self.mktemp()
        url = "amqps://u:s3cret@h/%2F?ssl_options=" + quote(repr({"ca_certs": missing}))
        with self.assertRaises(ValueError) as cm:
            parse_amqp_url(url)
        self.assertIn(f"cannot read ca_certs file {missing!r}", str(cm.exception))
        self.assertNotIn("s3cret", str(cm.exception))

    def test_redacted(self) -> None:
        """The redacted form hides the password."""
        a = parse_amqp_url("amqp://user:s3cret@h:5672/%2F")
        self.assertNotIn("s3cret", a.redacted)
        self.assertIn("user:***@h:5672", a.redacted)

    def test_invalid_never_shows_password(self) -> None:
        """Errors for invalid URLs do not contain the password."""
        with self.assertRaises(ValueError) as cm:
            parse_amqp_url("http://user:s3cret@h/")
        self.assertNotIn("s3cret", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            parse_amqp_url("amqp://user:s3cret@h/?heartbeat=notanumber")
        self.assertNotIn("s3cret", str(cm.exception))
