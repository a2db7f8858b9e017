# -*- test-case-name: txmsg.test.test_amqp_refusal -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
RabbitMQ refusing a login (or a vhost) is not a network problem: name it.

pika reports a wrong password as C{ConnectionClosedByBroker(403,
"ACCESS_REFUSED - Login was refused ...")} (or, from brokers that close the
socket instead, C{ProbableAuthenticationError}), and a vhost the user may
not use as C{ConnectionClosedByBroker(530, "NOT_ALLOWED ...")}.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from txmsg.amqp.url import AMQPAddress

__all__ = ["LoginRefused", "describe_refusal"]

_ACCESS_REFUSED = 403
_NOT_ALLOWED = 530
_AUTH_ERRORS = ("AuthenticationError", "ProbableAuthenticationError")
_VHOST_ERRORS = ("ProbableAccessDeniedError",)


class LoginRefused(Exception):
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
