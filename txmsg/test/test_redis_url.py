# -*- test-case-name: txmsg.test.test_redis_url -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.url}.
"""

from __future__ import annotations

from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.url import DEFAULT_REDIS_URL, InvalidRedisURL, parse_redis_url


class ParseRedisURLTests(SynchronousTestCase):
    """
    Tests for L{parse_redis_url}.
    """

    def test_full(self) -> None:
        """
        User, password, host, port and db are all read.
        """
        u = parse_redis_url("redis://alice:p%40ss@cache.example:6390/4")
        self.assertEqual(
            (u.scheme, u.username, u.password, u.host, u.port, u.db, u.tls),
            ("redis", "alice", "p@ss", "cache.example", 6390, 4, False),
        )

    def test_defaults(self) -> None:
        """
        Port 6379 and db 0 are the defaults; a password without a user works.
        """
        u = parse_redis_url("redis://:pw@h")
        self.assertEqual((u.port, u.db, u.username, u.password), (6379, 0, None, "pw"))

    def test_tls(self) -> None:
        """
        C{rediss://} means TLS, with an optional CA file.
        """
        ca = self.mktemp()
        with open(ca, "w"):
            pass
        u = parse_redis_url(f"rediss://h:6380/1?ca_certs={ca}")
        self.assertEqual((u.tls, u.ca_certs, u.db), (True, ca, 1))

    def test_tls_client_certificate(self) -> None:
        """
        C{certfile} and C{keyfile} name the client certificate and key.
        """
        cert, key = self.mktemp(), self.mktemp()
        for path in (cert, key):
            with open(path, "w"):
                pass
        u = parse_redis_url(f"rediss://h/0?certfile={cert}&keyfile={key}")
        self.assertEqual((u.certfile, u.keyfile, u.ca_certs), (cert, key, None))

    def test_tls_unreadable_file(self) -> None:
        """
        A TLS file that cannot be read is a URL error naming the option and
        the file, without the password.
        """
        missing = self.mktemp()
        for option in ("ca_certs", "certfile", "keyfile"):
            e = self.assertRaises(
                InvalidRedisURL, parse_redis_url, f"rediss://:pw@h/0?{option}={missing}"
            )
            self.assertIn(f"cannot read {option} file {missing!r}", str(e))
            self.assertNotIn(":pw@", str(e))

    def test_unix(self) -> None:
        """
        C{unix:///path?db=N} gives a socket path and a db.
        """
        u = parse_redis_url("unix:///run/redis.sock?db=2")
        self.assertEqual((u.scheme, u.path, u.db, u.host), ("unix", "/run/redis.sock", 2, None))
        self.assertEqual(parse_redis_url("unix:/tmp/r.sock").path, "/tmp/r.sock")

    def test_env_default(self) -> None:
        """
        Without a URL, C{TXMSG_REDIS_URL} is used, else the documented default.
        """
        self.assertEqual(parse_redis_url(None, {"TXMSG_REDIS_URL": "redis://e:1/9"}).db, 9)
        self.assertEqual(parse_redis_url(None, {}).url, DEFAULT_REDIS_URL)

    def test_errors_hide_password(self) -> None:
        """
        Bad schemes, ports and db numbers raise L{InvalidRedisURL} whose
        message never contains the password.
        """
        for bad in (
            "http://u:s3cret@h/0",
            "redis://u:s3cret@h:notaport/0",
            "redis://u:s3cret@h:1/x",
            "redis://u:s3cret@/0",
            "unix://",
        ):
            e = self.assertRaises(InvalidRedisURL, parse_redis_url, bad)
            self.assertNotIn("s3cret", str(e))

    def test_redacted(self) -> None:
        """
        C{str()} and C{repr()} never show the password.
        """
        u = parse_redis_url("redis://u:s3cret@h:1/0")
        self.assertEqual(str(u), "redis://u:***@h:1/0")
        self.assertNotIn("s3cret", repr(u))

    def test_endpoints(self) -> None:
        """
        TCP URLs give a HostnameEndpoint and unix URLs a UNIXClientEndpoint,
        on the given reactor; rediss wraps the TCP endpoint in TLS.
        """
        r = MemoryReactor()
        e = parse_redis_url("redis://h:7/0").endpoint(r)
        self.assertIsInstance(e, HostnameEndpoint)
        self.assertIs(e._reactor, r)  # type: ignore[attr-defined]
        self.assertIsInstance(parse_redis_url("unix:///s").endpoint(r), UNIXClientEndpoint)
        tls = parse_redis_url("rediss://h:7/0").endpoint(r)
        self.assertIsInstance(tls._wrappedEndpoint, HostnameEndpoint)  # type: ignore[attr-defined]
