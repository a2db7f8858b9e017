# -*- test-case-name: txmsg.test.test_redis_connection -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A Redis connection set-up that failed for a reason the user must fix: name
it in one line.

txredisapi reports two things: a connection lost with the reason Twisted
gives (an C{OpenSSL.SSL.Error} when the TLS handshake failed, see
L{txmsg._tls}), and, when it gives up on a connection whose C{AUTH} or
C{SELECT} failed, a text such as C{"Redis error: could not auth: WRONGPASS
..."} (or C{"... could not set dbid=0: Lost connection"} when the
connection was lost first).  L{describe_setup_failure} turns either into a
L{RedisConnectionFailed}: a L{RedisRefused} when Redis answered with an
error.
"""

from __future__ import annotations

from twisted.python.failure import Failure

from txmsg._tls import REDIS_HINTS, describe_tls_failure

__all__ = [
    "RedisConnectionFailed",
    "RedisRefused",
    "describe_refusal",
    "describe_setup_failure",
]


class RedisConnectionFailed(ConnectionError):
    """
    A connection to Redis could not be set up for a reason the user must
    fix (a TLS handshake failed, Redis refused the login, ...); the message
    says why in one line, without the password.  Not retried.
    """


class RedisRefused(RedisConnectionFailed):
    """
    Redis refused to set up the connection (a wrong password or user name,
    a database that does not exist).
    """


_TXREDISAPI_PREFIX = "Redis error: "
_AUTH_PREFIX = "could not auth: "
_LOST = "Lost connection"


def _text(why: str) -> str:
    text = why[len(_TXREDISAPI_PREFIX) :] if why.startswith(_TXREDISAPI_PREFIX) else why
    return " ".join(text.split())


def describe_refusal(url: str, why: str) -> str:
    """
    One line for a refused connection set-up.

    @param url: the redacted URL.
    @param why: txredisapi's text (C{"Redis error: could not auth: WRONGPASS ..."}).
    """
    text = _text(why)
    if text.startswith(_AUTH_PREFIX):
        return (
            "Redis at {} refused the login: {}; check the user name and password "
            "in the Redis URL".format(url, text[len(_AUTH_PREFIX) :].rstrip("."))
        )
    return "Redis at {} refused the connection: {}".format(url, text)


def describe_setup_failure(
    url: str, reason: str | Failure | BaseException
) -> RedisConnectionFailed | None:
    """
    Name a failed connection set-up the user must fix.

    @param url: the redacted URL.
    @param reason: txredisapi's text when it gave up on a connection, or
        why a connection was lost.
    @return: for a text, L{RedisRefused} when Redis answered the set-up
        with an error, else L{RedisConnectionFailed}; for a lost connection,
        L{RedisConnectionFailed} naming a failed TLS handshake, or L{None}
        when it was lost for another reason.
    """
    if isinstance(reason, str):
        if _text(reason).endswith(_LOST):
            return RedisConnectionFailed(
                "Redis at {} closed the connection while it was set up: {}".format(
                    url, _text(reason)
                )
            )
        return RedisRefused(describe_refusal(url, reason))
    tls = describe_tls_failure(reason, url, REDIS_HINTS)
    return None if tls is None else RedisConnectionFailed(tls)
