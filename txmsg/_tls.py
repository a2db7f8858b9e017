# -*- test-case-name: txmsg.test.test_tls -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
TLS connection failures in one line.

A TLS handshake that fails reaches the protocol as the reason of
C{connectionLost}: an C{OpenSSL.SSL.Error} (the server's certificate is not
trusted, the server wants a client certificate or rejected ours) or a
C{service_identity} C{VerificationError} (the certificate is for another
host name).  Clients built on top of that (txredisapi, pika) turn it into
"Lost connection", so the Redis and AMQP connections ask
L{describe_tls_failure} first and report its sentence instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from OpenSSL.SSL import Error as OpenSSLError
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure

__all__ = [
    "AMQP_HINTS",
    "REDIS_HINTS",
    "TLSHints",
    "client_tls_options",
    "describe_tls_failure",
    "unreadable_tls_file",
]


@dataclass(frozen=True)
class TLSHints:
    """
    How a user of one kind of URL sets the TLS options named in messages.

    @ivar ca: how to give the CA file that signed the server's certificate.
    @ivar client_cert: how to give a client certificate and its key.
    @ivar hostname: how to verify the certificate against another name.
    """

    ca: str
    client_cert: str
    hostname: str


#: Hints for C{rediss://} URLs (see L{txmsg.redis.url}).
REDIS_HINTS = TLSHints(
    ca="add ?ca_certs=/path/to/ca.pem to the rediss:// URL",
    client_cert="add ?certfile=/path/to/client.pem&keyfile=/path/to/client.key "
    "to the rediss:// URL",
    hostname="connect with the host name the certificate was issued for",
)

#: Hints for C{amqps://} URLs (see L{txmsg.amqp.url}).
AMQP_HINTS = TLSHints(
    ca="add ?ssl_options={'ca_certs': '/path/to/ca.pem'} to the amqps:// URL",
    client_cert="add 'certfile': '/path/to/client.pem', 'keyfile': "
    "'/path/to/client.key' to ssl_options in the amqps:// URL",
    hostname="connect with the host name the certificate was issued for, "
    "or set 'server_hostname' in ssl_options",
)

# OpenSSL reason texts, lower case, mapped to what they mean for the user.
_NOT_TRUSTED = ("certificate verify failed",)
_CERT_REQUIRED = ("alert certificate required", "peer did not return a certificate")
_CERT_REJECTED = (
    "alert unknown ca",
    "alert bad certificate",
    "alert certificate unknown",
    "alert certificate expired",
    "alert certificate revoked",
    "alert access denied",
)


def _openssl_reasons(value: BaseException) -> list[str]:
    """
    The reason strings of an C{OpenSSL.SSL.Error} (a list of C{(library,
    function, reason)} tuples), or C{[]} for anything else.
    """
    if not isinstance(value, OpenSSLError):
        return []
    reasons = []
    for item in value.args[0] if value.args and isinstance(value.args[0], list) else []:
        if isinstance(item, tuple) and item:
            reasons.append(str(item[-1]))
    return reasons or [str(value) or "TLS error"]


def describe_tls_failure(
    reason: Failure | BaseException, where: str, hints: TLSHints
) -> str | None:
    """
    Describe a failed TLS connection as one line naming the cause and the
    option that fixes it.

    @param reason: why the connection was lost (or could not be made).
    @param where: the redacted URL of the server.
    @param hints: how the options are spelt for this kind of URL.
    @return: the sentence, or L{None} when C{reason} is not a TLS failure.
    """
    value = reason.value if isinstance(reason, Failure) else reason
    if value is None:
        return None
    if type(value).__name__ == "VerificationError" and "service_identity" in (
        type(value).__module__
    ):
        return (
            f"TLS certificate verification failed for {where}: the certificate "
            f"does not match the host name ({value}); {hints.hostname}"
        )
    reasons = _openssl_reasons(value)
    if not reasons:
        return None
    text = "; ".join(reasons)
    lower = text.lower()
    if any(r in lower for r in _NOT_TRUSTED):
        return (
            f"TLS certificate verification failed for {where}: the server's "
            f"certificate is not signed by a trusted CA ({text}); {hints.ca}"
        )
    if any(r in lower for r in _CERT_REQUIRED):
        return (
            f"TLS handshake with {where} failed: the server requires a client "
            f"certificate ({text}); {hints.client_cert}"
        )
    if any(r in lower for r in _CERT_REJECTED):
        return (
            f"TLS handshake with {where} failed: the server rejected the client "
            f"certificate ({text}); use one signed by a CA the server trusts"
        )
    return f"TLS handshake with {where} failed: {text}"


def unreadable_tls_file(options: dict[str, str | None]) -> str | None:
    """
    Check the files a URL names for TLS before anything tries to use them.

    @param options: option name (C{ca_certs}, C{certfile}, ...) to path (or
        L{None} when not given).
    @return: C{"cannot read OPTION file 'PATH'"} for the first file that
        cannot be read, else L{None}.
    """
    for option, path in options.items():
        if path and not os.access(path, os.R_OK):
            return f"cannot read {option} file {path!r}"
    return None


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"cannot read the TLS {what} {path}: {e.strerror or e}") from None


def client_tls_options(
    hostname: str,
    ca_certs: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> IOpenSSLClientConnectionCreator:
    """
    Client TLS options that verify the server's certificate for C{hostname}
    (against C{ca_certs}, else the platform's trust store) and present a
    client certificate when C{certfile} is given.

    @param ca_certs: a PEM file of the CA certificate(s) to trust.
    @param certfile: a PEM file with the client certificate (and its key,
        unless C{keyfile} is given).
    @param keyfile: a PEM file with the client certificate's private key.
    @raise ValueError: when a file cannot be read or is not a PEM
        certificate or key; the message names the file.
    """
    kwargs: dict[str, object] = {}
    if ca_certs:
        pem = _read(ca_certs, "CA file")
        try:
            kwargs["trustRoot"] = ssl.Certificate.loadPEM(pem)
        except Exception as e:
            raise ValueError(f"the TLS CA file {ca_certs} is not a PEM certificate ({e})") from None
    if certfile:
        pem = _read(certfile, "client certificate file")
        if keyfile:
            pem += b"\n" + _read(keyfile, "client key file")
        try:
            kwargs["clientCertificate"] = ssl.PrivateCertificate.loadPEM(pem)
        except Exception as e:
            raise ValueError(
                f"the TLS client certificate {certfile} (key {keyfile or certfile}) "
                f"is not a PEM certificate and private key ({e})"
            ) from None
    return ssl.optionsForClientTLS(hostname, **kwargs)  # type: ignore[arg-type]
