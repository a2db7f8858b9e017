# -*- test-case-name: txmsg.test.test_amqp_url -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
AMQP addresses: pika's C{amqp://} / C{amqps://} URLs turned into connection
parameters and a Twisted client endpoint.

Pika's Twisted adapter ignores C{host}, C{port} and C{ssl_options} of its
parameters (Twisted makes the TCP connection), so this module builds the
endpoint itself: a L{HostnameEndpoint}, wrapped in TLS for C{amqps://}.
Everything else in the URL (credentials, vhost, C{heartbeat},
C{blocked_connection_timeout}, C{client_properties}, ...) is parsed by
L{pika.URLParameters} and honoured by pika's core connection.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTCP,
    IStreamClientEndpoint,
)

from txmsg._redact import redact_url
from txmsg._tls import client_tls_options, unreadable_tls_file
from txmsg.net.transport import client_reactor

__all__ = [
    "DEFAULT_AMQP_URL",
    "ENV_VAR",
    "AMQPAddress",
    "amqp_url",
    "parse_amqp_url",
]

#: The URL used when neither an argument nor C{TXMSG_AMQP_URL} gives one.
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

#: The environment variable read for the default URL.
ENV_VAR = "TXMSG_AMQP_URL"


def amqp_url(url: str | None = None, environ: Any = None) -> str:
    """
    Pick the AMQP URL to use: C{url} if given, else C{$TXMSG_AMQP_URL}, else
    L{DEFAULT_AMQP_URL}.

    @param url: an explicit URL, or L{None}.
    @param environ: the environment mapping (default: C{os.environ}).
    """
    if url:
        return url
    env = os.environ if environ is None else environ
    return env.get(ENV_VAR) or DEFAULT_AMQP_URL


@dataclass(frozen=True)
class AMQPAddress:
    """
    A parsed AMQP URL.

    @ivar url: the URL as given (it may hold a password: never log it).
    @ivar host: the broker host name.
    @ivar port: the broker port.
    @ivar tls: whether the scheme is C{amqps}.
    @ivar tls_options: for C{amqps}, the C{ssl_options} query argument as a
        dict (C{ca_certs}, C{certfile}, C{keyfile}, C{server_hostname}).
    """

    url: str
    host: str
    port: int
    tls: bool
    tls_options: dict

    @property
    def redacted(self) -> str:
        """The URL with its password replaced by C{***}, safe to log."""
        return redact_url(self.url)

    def parameters(self, connection_name: str | None = None) -> Any:
        """
        Build fresh L{pika.URLParameters} for one connection attempt.

        @param connection_name: a client-provided connection name, shown by
            C{rabbitmqctl list_connections client_properties} and the
            management UI.
        @return: a L{pika.connection.URLParameters}.
        """
        params = pika.URLParameters(self.url)
        # Twisted does TLS (see endpoint()); pika must not try to.
        params.ssl_options = None
        if connection_name:
            props = dict(params.client_properties or {})
            props["connection_name"] = connection_name
            params.client_properties = props
        return params

    def endpoint(
        self, reactor: IReactorTCP, tls_creator: IOpenSSLClientConnectionCreator | None = None
    ) -> IStreamClientEndpoint:
        """
        Build the Twisted client endpoint for this address.

        @param reactor: the reactor to connect with.
        @param tls_creator: for C{amqps}, an explicit
            C{IOpenSSLClientConnectionCreator}; by default one is made with
            L{optionsForClientTLS} from the host name (or C{server_hostname})
            and C{ca_certs}/C{certfile}/C{keyfile} of C{ssl_options}.
        """
        # Write-through: the frames of one read go out in one send(), at once
        # (see txmsg.amqp._protocol.CoalescingWriter).
        tcp = HostnameEndpoint(client_reactor(reactor), self.host, self.port)
        if not self.tls:
            return tcp
        if tls_creator is None:
            tls_creator = self._tls_creator()
        return wrapClientTLS(tls_creator, tcp)

    def _tls_creator(self) -> Any:
        opts = self.tls_options
        return client_tls_options(
            opts.get("server_hostname") or self.host,
            opts.get("ca_certs") or opts.get("cafile"),
            opts.get("certfile"),
            opts.get("keyfile"),
        )


def parse_amqp_url(url: str | None = None) -> AMQPAddress:
    """
    Parse an AMQP URL with pika's conventions.

    C{amqp://user:password@host:port/vhost?heartbeat=30} (port 5672 by
    default) or C{amqps://...} (port 5671 by default, TLS).  The vhost is
    percent-encoded: C{%2F} is C{/}.

    @param url: the URL; L{None} means L{amqp_url}'s default.
    @raise ValueError: if the URL is not a valid AMQP URL; the message never
        contains the password.
    """
    url = amqp_url(url)
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("amqp", "amqps"):
            raise ValueError("scheme must be amqp or amqps")
        tls = scheme == "amqps"
        port = parts.port or (5671 if tls else 5672)
        tls_options: dict = {}
        raw = parse_qs(parts.query).get("ssl_options")
        if tls and raw:
            tls_options = dict(ast.literal_eval(raw[0]) or {})
        # pika reads these files: say which one cannot be read first.
        unreadable = unreadable_tls_file(
            {k: tls_options.get(k) for k in ("ca_certs", "cafile", "certfile", "keyfile")}
        )
        if unreadable:
            raise ValueError(unreadable)
        # Validate everything else (query arguments, credentials) with pika.
        pika.URLParameters(url)
    except (ValueError, SyntaxError, TypeError, OSError) as e:
        raise ValueError(f"invalid AMQP URL {redact_url(url)}: {e}") from None
    return AMQPAddress(
        url=url,
        host=parts.hostname or "localhost",
        port=port,
        tls=tls,
        tls_options=tls_options,
    )
