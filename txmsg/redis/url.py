# -*- test-case-name: txmsg.test.test_redis_url -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Where Redis is: one URL, turned into a Twisted client endpoint.

Accepted forms::

    redis://[[user]:password@]host[:port][/db]     (port 6379, db 0 by default)
    rediss://[[user]:password@]host[:port][/db][?ca_certs=/path/ca.pem]   (TLS)
        [&certfile=/path/client.pem[&keyfile=/path/client.key]]  (client certificate)
    unix:///path/to/redis.sock[?db=N]              (also: redis+unix://, unix:/path)
    redis+sentinel://[[user]:password@]host1[:port1],host2[:port2],.../master-name[/db]
        [?sentinel_password=...&sentinel_username=...]  (Sentinel; port 26379 by default)
    rediss+sentinel://...[?ca_certs=...&certfile=...&keyfile=...]  (TLS to Sentinels and master)

With Sentinel the user name and password are the master's; the Sentinels'
own (if they have C{requirepass}) go in C{sentinel_password} /
C{sentinel_username}.  See L{txmsg.redis.sentinel}.

When no URL is given, C{TXMSG_REDIS_URL} from the environment is used, else
C{redis://127.0.0.1:6379/0}.  Passwords are never part of C{str()} or C{repr()}
of a L{RedisURL}: use L{RedisURL.redacted} in messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.internet import endpoints
from twisted.internet.interfaces import IStreamClientEndpoint

from txmsg._reactor import maybe_global_reactor
from txmsg._redact import redact_url
from txmsg._tls import client_tls_options, unreadable_tls_file
from txmsg.net.transport import client_reactor
from txmsg.redis.sentinel import SentinelEndpoint

__all__ = [
    "DEFAULT_REDIS_URL",
    "ENV_VAR",
    "InvalidRedisURL",
    "REDIS_SCHEMES",
    "RedisURL",
    "is_redis_url",
    "parse_redis_url",
]

#: Every scheme L{parse_redis_url} accepts.
REDIS_SCHEMES = frozenset(
    {"redis", "rediss", "unix", "redis+unix", "redis+sentinel", "rediss+sentinel"}
)


def is_redis_url(url: str) -> bool:
    """
    Whether C{url}'s scheme is a Redis one (L{REDIS_SCHEMES}), e.g. to tell
    a Redis broker URL from an AMQP one; the URL is not checked further.
    """
    return url.split(":", 1)[0].lower() in REDIS_SCHEMES


#: The URL used when neither an argument nor C{TXMSG_REDIS_URL} names one.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The environment variable read for the default URL.
ENV_VAR = "TXMSG_REDIS_URL"


class InvalidRedisURL(ValueError):
    """
    The Redis URL could not be understood.  The message never contains the
    password.
    """


@dataclass(frozen=True)
class RedisURL:
    """
    A parsed Redis URL.

    @ivar scheme: C{"redis"}, C{"rediss"} (TLS) or C{"unix"}.
    @ivar host: host name or address (C{None} for unix sockets).
    @ivar port: TCP port (C{None} for unix sockets).
    @ivar path: unix socket path (C{None} for TCP).
    @ivar db: database number selected after connecting.
    @ivar username: ACL user name, or C{None}.
    @ivar password: password, or C{None}; hidden from C{repr}.
    @ivar ca_certs: for C{rediss}, a PEM file of trusted CAs (else the
        platform's trust store).
    @ivar url: the original text, for L{redacted}.
    @ivar certfile: for C{rediss}, a PEM file with a client certificate (and
        its key unless C{keyfile} is given), for servers started with
        C{--tls-auth-clients yes}.
    @ivar keyfile: for C{rediss}, the client certificate's private key.
    @ivar sentinels: for C{redis+sentinel}, C{(host, port)} of each Sentinel.
    @ivar service: for C{redis+sentinel}, the master's name.
    @ivar sentinel_username: the Sentinels' ACL user, or C{None}.
    @ivar sentinel_password: the Sentinels' password, or C{None}.
    """

    scheme: str
    host: str | None
    port: int | None
    path: str | None
    db: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    url: str = field(default="", repr=False)
    certfile: str | None = None
    keyfile: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        """
        Whether the connection uses TLS.
        """
        return self.scheme in ("rediss", "rediss+sentinel")

    @property
    def sentinel(self) -> bool:
        """
        Whether the master is found through Sentinel (C{sentinels},
        C{service}).
        """
        return bool(self.sentinels)

    def redacted(self) -> str:
        """
        The URL with its password replaced by C{***}: safe to log.
        """
        return redact_url(self.url) if self.url else self._rebuild()

    def _rebuild(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}?db={self.db}"
        cred = ""
        if self.password is not None:
            cred = "{}:***@".format(self.username or "")
        elif self.username:
            cred = f"{self.username}@"
        return f"{self.scheme}://{cred}{self.host}:{self.port}/{self.db}"

    def __str__(self) -> str:
        return self.redacted()

    def endpoint(
        self, reactor: Any = None, connect_timeout: float | None = 10.0
    ) -> IStreamClientEndpoint:
        """
        Build a client endpoint for this URL on C{reactor}.

        @param reactor: the reactor to connect with (global one when C{None}).
        @param connect_timeout: seconds allowed for a TCP/unix connect.
        @raise ValueError: for C{rediss}, when a CA or client certificate
            file cannot be read.
        """
        reactor = maybe_global_reactor(reactor)

        timeout = 30 if connect_timeout is None else connect_timeout
        if self.sentinels:
            return SentinelEndpoint(
                reactor,
                self.sentinels,
                self.service or "",
                username=self.username,
                password=self.password,
                sentinel_username=self.sentinel_username,
                sentinel_password=self.sentinel_password,
                tls=self.tls,
                ca_certs=self.ca_certs,
                certfile=self.certfile,
                keyfile=self.keyfile,
                timeout=timeout,
            )
        if self.scheme == "unix":
            assert self.path is not None
            return endpoints.UNIXClientEndpoint(reactor, self.path, timeout=timeout)
        assert self.host is not None and self.port is not None
        inner: IStreamClientEndpoint = endpoints.HostnameEndpoint(
            client_reactor(reactor), self.host, self.port, timeout=timeout
        )
        if not self.tls:
            return inner
        options = client_tls_options(self.host, self.ca_certs, self.certfile, self.keyfile)
        return endpoints.wrapClientTLS(options, inner)


def _int(text: str, what: str, url: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidRedisURL(f"bad {what} {text!r} in Redis URL {redact_url(url)}") from None
    if value < 0:
        raise InvalidRedisURL(f"negative {what} in Redis URL {redact_url(url)}")
    return value


def parse_redis_url(
    url: str | RedisURL | None = None, environ: Mapping[str, str] | None = None
) -> RedisURL:
    """
    Parse a Redis URL (see the module docstring for the accepted forms).

    @param url: the URL; when C{None} or empty, C{TXMSG_REDIS_URL} from
        C{environ} (default C{os.environ}), else L{DEFAULT_REDIS_URL}.
        A L{RedisURL} is returned unchanged.
    @raise InvalidRedisURL: for an unknown scheme, a bad port or db number,
        or a TLS file (C{ca_certs}, C{certfile}, C{keyfile}) that cannot be
        read.
    """
    if isinstance(url, RedisURL):
        return url
    if not url:
        env = os.environ if environ is None else environ
        url = env.get(ENV_VAR) or DEFAULT_REDIS_URL
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = None if scheme.endswith("+sentinel") else parts.port
    except ValueError as e:
        raise InvalidRedisURL(f"cannot parse Redis URL {redact_url(url)}: {e}") from None
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        return _parse_sentinel_url(url, scheme, parts.netloc, parts.path, query)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None

    if scheme in ("unix", "redis+unix"):
        path = unquote(parts.path)
        if not path:
            raise InvalidRedisURL(f"unix Redis URL needs a socket path: {redact_url(url)}")
        db = _int(query.get("db", "0"), "db", url)
        return RedisURL("unix", None, None, path, db, username, password, None, url)
    if scheme not in ("redis", "rediss"):
        raise InvalidRedisURL(
            f"unsupported Redis URL scheme {parts.scheme!r} in {redact_url(url)} "
            "(use redis://, rediss://, "
            "redis+sentinel:// or unix://)"
        )
    host = parts.hostname
    if not host:
        raise InvalidRedisURL(f"Redis URL has no host: {redact_url(url)}")
    db_text = parts.path.lstrip("/") or query.get("db", "0")
    db = _int(db_text, "db", url)
    return _tcp_url(url, scheme, query, db, username, password, host=host, port=port or 6379)


def _tcp_url(
    url: str,
    scheme: str,
    query: dict[str, str],
    db: int,
    username: str | None,
    password: str | None,
    **where: Any,
) -> RedisURL:
    """A TCP L{RedisURL} (direct or Sentinel), its TLS files checked."""
    files: dict[str, Any] = {k: query.get(k) for k in ("ca_certs", "certfile", "keyfile")}
    unreadable = unreadable_tls_file(files)
    if unreadable:
        raise InvalidRedisURL(f"{unreadable} of Redis URL {redact_url(url)}")
    return RedisURL(
        scheme,
        path=None,
        db=db,
        username=username,
        password=password,
        url=url,
        **files,
        **where,
    )


def _host_port(text: str, url: str) -> tuple[str, int]:
    """C{host}, C{host:port}, C{[v6]} or C{[v6]:port} (port 26379 by default)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise InvalidRedisURL(f"bad Sentinel address {text!r} in {redact_url(url)}")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise InvalidRedisURL(f"empty Sentinel host in Redis URL {redact_url(url)}")
    port = _int(port_text, "port", url) if port_text else 26379
    if not 0 < port < 65536:
        raise InvalidRedisURL(f"port {port} out of range in Redis URL {redact_url(url)}")
    return host, port


def _parse_sentinel_url(
    url: str, scheme: str, netloc: str, path: str, query: dict[str, str]
) -> RedisURL:
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(h.strip(), url) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise InvalidRedisURL(f"Sentinel URL names no Sentinel: {redact_url(url)}")
    service, _, db_text = path.lstrip("/").partition("/")
    service = unquote(service)
    if not service:
        raise InvalidRedisURL(
            f"Sentinel URL needs the master's name (.../mymaster/0): {redact_url(url)}"
        )
    db = _int(db_text.strip("/") or query.get("db", "0"), "db", url)
    return _tcp_url(
        url,
        scheme,
        query,
        db,
        username,
        password,
        host=None,
        port=None,
        sentinels=sentinels,
        service=service,
        sentinel_username=query.get("sentinel_username"),
        sentinel_password=query.get("sentinel_password"),
    )
