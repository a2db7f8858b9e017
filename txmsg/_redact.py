# -*- test-case-name: txmsg.test.test_redact -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Remove secrets from URLs before they reach a log line or an error message.
"""

import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """
    Return C{url} with any password replaced by C{***}.

    C{amqp://guest:secret@host:5672/vh} becomes C{amqp://guest:***@host:5672/vh};
    a URL without a password comes back unchanged, and text that is not a URL at all
    is returned as it is.

    @param url: a URL that may carry credentials.
    @return: the same URL, safe to log.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if "password" in unquote(parts.query).lower():
        parts = parts._replace(query=_redact_query(parts.query))
        url = urlunsplit(parts)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc="{}:***@{}".format(user, hostport)))


# A private key's passphrase in pika's ssl_options ({'password': '...'}) or a
# password=... (or sentinel_password=...) query argument.
_QUERY_SECRETS = (
    (re.compile(r"""(['"]password['"]\s*:\s*)(['"])(?:(?!\2).)*\2""", re.I), r"\1'***'"),
    (re.compile(r"(^|&)(\w*password=)[^&]*", re.I), r"\1\2***"),
)


def _redact_query(query: str) -> str:
    text = unquote(query)
    for pattern, replacement in _QUERY_SECRETS:
        text = pattern.sub(replacement, text)
    return text
