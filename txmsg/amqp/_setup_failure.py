# -*- test-case-name: txmsg.test.test_amqp_setup_failure -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
An AMQP connection set-up that failed for a reason the user must fix: name
it in one line.

Two causes are known:

  - RabbitMQ refused the login or the vhost.  pika reports a wrong password
    as C{ConnectionClosedByBroker(403, "ACCESS_REFUSED - Login was refused
    ...")} (or, from brokers that close the socket instead,
    C{ProbableAuthenticationError}), and a vhost the user may not use as
    C{ConnectionClosedByBroker(530, "NOT_ALLOWED ...")}: L{LoginRefused}.
  - The TLS handshake failed (the broker's certificate is not trusted, is
    for another host name, or the broker wants a client certificate or
    rejected ours); pika hands over the C{OpenSSL.SSL.Error} or
    C{service_identity} error unchanged (see L{txmsg._tls}):
    L{AMQPConnectionFailed}.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from txmsg._tls import AMQP_HINTS, describe_tls_failure
from txmsg.amqp.url import AMQPAddress

__all__ = [
    "AMQPConnectionFailed",
    "LoginRefused",
    "NotConnectedError",
    "ServiceStopped",
    "describe_refusal",
    "describe_setup_failure",
]

_ACCESS_REFUSED = 403
_NOT_ALLOWED = 530
_AUTH_ERRORS = ("AuthenticationError", "ProbableAuthenticationError")
_VHOST_ERRORS = ("ProbableAccessDeniedError",)


class NotConnectedError(Exception):
    """No AMQP connection became ready within the allowed time."""


class ServiceStopped(NotConnectedError):
    """The connection service is stopping or stopped."""


class AMQPConnectionFailed(NotConnectedError):
    """
    The connection set-up failed for a reason the user must fix (a failed
    TLS handshake, a refused login); the message says why in one line,
    without the password.
    """


class LoginRefused(AMQPConnectionFailed):
    """
    RabbitMQ refused the credentials or the vhost of the AMQP URL.  Not
    transient: retrying with the same URL fails the same way.
    """


def _user_and_vhost(address: AMQPAddress) -> tuple[str, str]:
    parts = urlsplit(address.url)
    user = unquote(parts.username) if parts.username else "guest"
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return user, vhost


def describe_refusal(error: BaseException, address: AMQPAddress) -> str | None:
    """
    One line for a connection set-up that RabbitMQ refused, naming the user
    and vhost and what to check; L{None} when C{error} is another failure.

    @param error: the reason pika gave for the failed set-up.
    @param address: where we connected (its password is never shown).
    """
    code = getattr(error, "reply_code", None)
    user, vhost = _user_and_vhost(address)
    if code == _ACCESS_REFUSED or type(error).__name__ in _AUTH_ERRORS:
        return (
            "RabbitMQ refused the login for user {!r} on vhost {!r} at {}: check the "
            "user name and password in the AMQP URL".format(user, vhost, address.redacted)
        )
    if code == _NOT_ALLOWED or type(error).__name__ in _VHOST_ERRORS:
        return (
            "RabbitMQ refused access to vhost {!r} for user {!r} at {}: check that the "
            "vhost exists and the user has permissions on it".format(vhost, user, address.redacted)
        )
    return None


def describe_setup_failure(
    error: BaseException, address: AMQPAddress
) -> AMQPConnectionFailed | None:
    """
    Name a failed connection set-up the user must fix: a refused login
    (L{LoginRefused}), else a failed TLS handshake (L{AMQPConnectionFailed});
    L{None} for anything else (the broker went away, ...), which is retried
    quietly.

    @param error: the reason pika gave for the failed set-up.
    @param address: where we connected (its password is never shown).
    """
    refusal = describe_refusal(error, address)
    if refusal is not None:
        return LoginRefused(refusal)
    tls = describe_tls_failure(error, address.redacted, AMQP_HINTS)
    if tls is not None:
        return AMQPConnectionFailed(tls)
    return None
