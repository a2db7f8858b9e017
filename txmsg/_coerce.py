# -*- test-case-name: txmsg.test.test_options -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Coercers for the fifth column of C{usage.Options.optParameters}.

    optParameters = [
        ["prefetch", "p", 1, "Unacked tasks per queue.", whole_number("prefetch", 1)],
        ["amqp", None, None, "RabbitMQ URL.", amqp_url_option("amqp")],
    ]

L{usage.Options} calls the coercer with the text given on the command line
and turns its C{ValueError} into a usage error; each coercer names its option
and says what it wants, so the one line the user sees is enough to fix the
command.  The C{coerceDoc} of each coercer is appended to the option's help.
Defaults are not coerced: give them already converted (C{1}, not C{"1"}).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

from twisted.python import usage

from txmsg.amqp.hosts import parse_amqp_urls
from txmsg.redis.url import parse_redis_url

__all__ = [
    "amqp_url_option",
    "check_amqp_url",
    "check_redis_url",
    "choice",
    "number",
    "redis_url_option",
    "seconds",
    "url_from_environment",
    "whole_number",
]

T = TypeVar("T")

#: What to write instead of a bad AMQP URL.
AMQP_URL_FORM = (
    "amqp://USER:PASSWORD@HOST:5672/VHOST (or amqps:// for TLS; "
    "several comma-separated for a cluster)"
)
#: What to write instead of a bad Redis URL.
REDIS_URL_FORM = (
    "redis://[:PASSWORD@]HOST:6379/DB, rediss://..., unix:///PATH "
    "or redis+sentinel://HOST1:26379,HOST2:26379/MASTER/DB"
)


def _documented(function: Callable[[str], T], doc: str) -> Callable[[str], T]:
    function.coerceDoc = doc  # type: ignore[attr-defined]
    return function


def number(
    name: str, kind: Callable[[str], T], minimum: float, what: str, above: bool = False
) -> Callable[[str], T]:
    """
    A coercer to C{kind} (C{int} or C{float}) that insists on C{minimum}.

    @param name: the option's long name (for the message).
    @param kind: C{int} or C{float}.
    @param minimum: the least value allowed.
    @param what: the kind of value in words (C{"a whole number"}).
    @param above: whether C{minimum} itself is excluded.
    """
    bound = "more than" if above else "at least"

    def coerce(text: str) -> T:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise ValueError(
                "--{} must be {} {} {}, not {!r}".format(name, what, bound, minimum, text)
            ) from None
        if not (value > minimum if above else value >= minimum):  # type: ignore[operator]
            raise ValueError("--{} must be {} {}, not {}".format(name, bound, minimum, text))
        return value

    return _documented(coerce, "Must be {} {} {}.".format(what, bound, minimum))


def whole_number(name: str, minimum: int = 0) -> Callable[[str], int]:
    """
    A coercer to C{int}, at least C{minimum}.
    """
    return number(name, int, minimum, "a whole number")


def seconds(name: str, minimum: float = 0, above: bool = False) -> Callable[[str], float]:
    """
    A coercer to a number of seconds (C{float}), at least (or, with
    C{above}, more than) C{minimum}.
    """
    return number(name, float, minimum, "a number of seconds", above)


def choice(name: str, *choices: str) -> Callable[[str], str]:
    """
    A coercer accepting one of C{choices}.
    """

    def coerce(text: str) -> str:
        if text not in choices:
            raise ValueError("--{} must be {}, not {!r}".format(name, " or ".join(choices), text))
        return text

    return _documented(coerce, "One of: {}.".format(", ".join(choices)))


def check_amqp_url(url: str, source: str) -> str:
    """
    Validate an AMQP URL, or a comma-separated list of them (a cluster).

    @param url: the URL(s).
    @param source: where it came from (C{"--amqp"}, C{"$TXMSG_AMQP_URL"}).
    @return: C{url}, unchanged.
    @raise ValueError: one line naming the source and the expected form;
        the password never appears in it.
    """
    try:
        parse_amqp_urls(url)
    except ValueError as e:
        raise ValueError("{}: {}; expected {}".format(source, e, AMQP_URL_FORM)) from None
    return url


def check_redis_url(url: str, source: str) -> str:
    """
    Validate a Redis URL; like L{check_amqp_url}.
    """
    try:
        parse_redis_url(url)
    except ValueError as e:
        raise ValueError("{}: {}; expected {}".format(source, e, REDIS_URL_FORM)) from None
    return url


def amqp_url_option(name: str = "amqp") -> Callable[[str], str]:
    """
    A coercer validating an AMQP URL given as C{--name}.
    """
    return _documented(lambda text: check_amqp_url(text, "--" + name), "")


def redis_url_option(name: str = "redis") -> Callable[[str], str]:
    """
    A coercer validating a Redis URL given as C{--name}.
    """
    return _documented(lambda text: check_redis_url(text, "--" + name), "")


def url_from_environment(
    given: str | None,
    env_var: str,
    check: Callable[[str, str], str],
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """
    The URL of an option whose default is an environment variable: the
    option's value if given (already checked by its coercer), else the
    variable's, checked with C{check}.

    @return: the URL, or L{None} when neither gives one.
    @raise usage.UsageError: when the variable holds a bad URL.
    """
    if given:
        return given
    env = os.environ if environ is None else environ
    url = env.get(env_var) or None
    if url is not None:
        try:
            check(url, "$" + env_var)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
    return url
