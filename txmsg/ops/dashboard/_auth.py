# -*- test-case-name: txmsg.test.test_dashboard_auth -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Who may look and who may act.

  - Loopback (and UNIX sockets) needs no credentials; any other interface
    does (L{needs_credentials}); the tap refuses to start without them.
  - Credentials are HTTP basic, checked by C{twisted.cred}: user names and
    passwords from an auth file (C{user:password} per line, read on each
    login so it can be edited in place), and/or a token accepted as the
    password of any user name (C{curl -u :TOKEN}).  L{protect} wraps the
    dashboard in C{twisted.web.guard}.
  - Actions are POSTs that carry the page's CSRF token and, when the
    browser says where the request comes from (C{Origin}, C{Referer},
    C{Sec-Fetch-Site}), come from the dashboard itself (L{csrf_problem}).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Any
from urllib.parse import urlsplit

from twisted.cred.checkers import FilePasswordDB, ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.web.guard import BasicCredentialFactory, HTTPAuthSessionWrapper
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from zope.interface import implementer

__all__ = [
    "TokenChecker",
    "csrf_problem",
    "is_loopback_endpoint",
    "is_tls_endpoint",
    "new_csrf_token",
    "protect",
    "read_auth_file",
]


def _endpoint_args(description: str) -> tuple[str, list[str], dict[str, str]]:
    # Twisted's endpoint grammar: colons separate arguments, "\:" escapes one.
    parts, current, escaped = [], "", False
    for ch in description:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    kind, rest = parts[0], parts[1:]
    kw = dict(p.split("=", 1) for p in rest if "=" in p)
    return kind.lower(), [p for p in rest if "=" not in p], kw


def is_loopback_endpoint(description: str) -> bool:
    """
    Whether a server endpoint string listens only on this machine: a UNIX
    socket, or TCP/TLS on a loopback C{interface=} (an endpoint without
    one listens on every interface).
    """
    kind, _, kw = _endpoint_args(description)
    if kind == "unix":
        return True
    if kind not in ("tcp", "tcp6", "ssl"):
        return False
    interface = kw.get("interface")
    if interface is None:
        return False
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def is_tls_endpoint(description: str) -> bool:
    """
    Whether the endpoint string listens with TLS.
    """
    return _endpoint_args(description)[0] == "ssl"


def read_auth_file(path: str) -> FilePasswordDB:
    """
    A checker for an auth file of C{user:password} lines (C{#} comments).

    @raise ValueError: when the file cannot be read or has no user.
    """
    try:
        with open(path, "rb") as f:
            users = [
                line
                for line in f.read().splitlines()
                if line.strip() and not line.startswith(b"#") and b":" in line
            ]
    except OSError as e:
        raise ValueError("cannot read --auth-file {}: {}".format(path, e.strerror)) from None
    if not users:
        raise ValueError("--auth-file {} names no user (one user:password per line)".format(path))
    return FilePasswordDB(path, delim=b":", cache=False)


@implementer(ICredentialsChecker)
class TokenChecker:
    """
    Accepts the token as the password of any user name.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        """
        The user name, when the password is the token.
        """
        if hmac.compare_digest(bytes(credentials.password), self._token):
            return succeed(credentials.username or b"token")
        return fail(UnauthorizedLogin("wrong token"))


@implementer(ICredentialsChecker)
class _AnyOf:
    """
    Accepts what any of its checkers accepts (a C{Portal} keeps only one
    checker per credentials interface).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, checkers: list[Any]) -> None:
        self.checkers = checkers

    async def _check(self, credentials: Any) -> Any:
        for checker in self.checkers:
            try:
                return await checker.requestAvatarId(credentials)
            except UnauthorizedLogin:
                continue
        raise UnauthorizedLogin("no checker accepted")

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        """
        The first avatar id a checker grants.
        """
        return Deferred.fromCoroutine(self._check(credentials))


@implementer(IRealm)
class _Realm:
    def __init__(self, resource: IResource) -> None:
        self.resource = resource

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IResource in interfaces:
            return IResource, self.resource, lambda: None
        raise NotImplementedError()


def protect(resource: IResource, checkers: list[Any]) -> IResource:
    """
    C{resource} behind HTTP basic authentication: 401 without valid
    credentials.

    @param checkers: C{twisted.cred} checkers (L{read_auth_file},
        L{TokenChecker}); any one of them may accept.
    """
    portal = Portal(_Realm(resource), [_AnyOf(checkers)])
    return HTTPAuthSessionWrapper(portal, [BasicCredentialFactory(b"txmsg dashboard")])


def new_csrf_token() -> str:
    """
    A fresh random token for the pages' forms.
    """
    return secrets.token_urlsafe(32)


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return parts.netloc.lower()


def _header(request: IRequest, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


def csrf_problem(request: IRequest, token: str) -> str | None:
    """
    Why this POST must be refused as a possible cross-site request, or
    L{None} when it may go on.

    The token (form field C{csrf} or header C{X-CSRF-Token}) must match;
    and when the browser names the page the request comes from (C{Origin},
    else C{Referer}), its host must be this request's C{Host}.
    """
    if _header(request, b"sec-fetch-site") == "cross-site":
        return "cross-site request refused"
    host = (_header(request, b"host") or "").lower()
    origin = _header(request, b"origin")
    source = origin if origin is not None else _header(request, b"referer")
    if source is not None and (source == "null" or _origin_of(source) != host):
        return "cross-site request refused (origin {!r} is not {!r})".format(source, host)
    args = getattr(request, "args", {}) or {}
    given = (args.get(b"csrf") or [b""])[0] or (request.getHeader(b"x-csrf-token") or b"")
    if not hmac.compare_digest(given, token.encode("ascii")):
        return "missing or wrong CSRF token; reload the page"
    return None
