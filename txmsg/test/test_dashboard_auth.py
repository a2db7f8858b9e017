# -*- test-case-name: txmsg.test.test_dashboard_auth -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the dashboard's access rules: loopback detection, HTTP basic
credentials (auth file, token) and the CSRF check.
"""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.static import Data
from twisted.web.test.requesthelper import DummyRequest

from txmsg.ops.dashboard._auth import (
    TokenChecker,
    csrf_problem,
    is_loopback_endpoint,
    is_tls_endpoint,
    protect,
    read_auth_file,
)
from txmsg.test._dashboard_support import body, code, request


class EndpointTests(SynchronousTestCase):
    """
    Which endpoints are loopback-only or TLS.
    """

    def test_loopback(self) -> None:
        """
        Loopback interfaces and UNIX sockets are local; no interface, a
        routable one or an unknown kind is not.
        """
        local = [
            "tcp:8082:interface=127.0.0.1",
            "tcp:port=8082:interface=127.0.0.2",
            r"tcp6:8082:interface=\:\:1",
            "ssl:443:interface=localhost:privateKey=k.pem",
            "unix:/run/txmsg.sock",
        ]
        remote = [
            "tcp:8082",
            "tcp:8082:interface=0.0.0.0",
            "tcp:8082:interface=10.1.2.3",
            r"tcp6:8082:interface=\:\:",
            "tcp:8082:interface=example.com",
            "systemd:domain=INET:index=0",
        ]
        self.assertEqual([is_loopback_endpoint(e) for e in local], [True] * len(local))
        self.assertEqual([is_loopback_endpoint(e) for e in remote], [False] * len(remote))

    def test_tls(self) -> None:
        """
        Only C{ssl:} endpoints are TLS.
        """
        self.assertTrue(is_tls_endpoint("ssl:443:privateKey=k.pem"))
        self.assertFalse(is_tls_endpoint("tcp:80"))


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode("{}:{}".format(user, password).encode())


class CredentialsTests(SynchronousTestCase):
    """
    L{protect} with an auth file and a token.
    """

    def setUp(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("# operators\nalice:wonderland\n")
        inner = Resource()
        inner.putChild(b"page", Data(b"secret page", "text/plain"))
        self.root = protect(inner, [read_auth_file(path), TokenChecker("t" * 20)])

    def get(self, authorization: bytes | None) -> DummyRequest:
        headers = {b"authorization": authorization} if authorization else {}
        return request(self.root, b"page", headers=headers)

    def test_401_without_credentials(self) -> None:
        """
        No or wrong credentials: 401 with a basic challenge, and no page.
        """
        for auth in (None, basic("alice", "nope"), basic("bob", "wonderland"), b"Bearer x"):
            req = self.get(auth)
            self.assertEqual(code(req), 401)
            self.assertNotIn(b"secret", body(req))
            self.assertEqual(
                req.responseHeaders.getRawHeaders(b"www-authenticate"),
                [b'basic realm="txmsg dashboard"'],
            )

    def test_valid_credentials(self) -> None:
        """
        A user of the file, or any user name with the token, sees the page.
        """
        for auth in (basic("alice", "wonderland"), basic("", "t" * 20), basic("ci", "t" * 20)):
            self.assertEqual(body(self.get(auth)), b"secret page")

    def test_auth_file_errors(self) -> None:
        """
        A missing or empty auth file is a one-line C{ValueError}.
        """
        empty = self.mktemp()
        with open(empty, "w") as f:
            f.write("# nobody\n")
        for path, words in ((self.mktemp(), "cannot read"), (empty, "names no user")):
            e = self.assertRaises(ValueError, read_auth_file, path)
            self.assertIn(words, str(e))


class CSRFTests(SynchronousTestCase):
    """
    L{csrf_problem}: the token must match and the origin be the dashboard's.
    """

    def post(self, headers: dict[bytes, bytes], token: bytes | None = b"tok") -> str | None:
        req = DummyRequest([b"x"])
        req.method = b"POST"
        req.args = {b"csrf": [token]} if token is not None else {}
        req.requestHeaders.setRawHeaders(b"host", [b"dash:8082"])
        for k, v in headers.items():
            req.requestHeaders.setRawHeaders(k, [v])
        return csrf_problem(req, "tok")  # type: ignore[arg-type]

    def test_same_origin(self) -> None:
        """
        A same-origin POST with the token passes; so does a client that
        sends neither Origin nor Referer (not a browser), with the token.
        """
        self.assertIsNone(self.post({b"origin": b"http://dash:8082"}))
        self.assertIsNone(self.post({b"referer": b"http://dash:8082/queues/q"}))
        self.assertIsNone(self.post({b"sec-fetch-site": b"same-origin"}))
        self.assertIsNone(self.post({}))
        self.assertIsNone(self.post({b"x-csrf-token": b"tok"}, token=None))

    def test_cross_site_refused(self) -> None:
        """
        Another origin, a null origin, a cross-site fetch, or a missing or
        wrong token is refused.
        """
        for headers, token in (
            ({b"origin": b"http://evil.example"}, b"tok"),
            ({b"origin": b"null"}, b"tok"),
            ({b"referer": b"http://evil.example/x"}, b"tok"),
            ({b"sec-fetch-site": b"cross-site"}, b"tok"),
            ({b"origin": b"http://dash:8082"}, b"wrong"),
            ({b"origin": b"http://dash:8082"}, None),
        ):
            self.assertIsNotNone(self.post(headers, token), (headers, token))
