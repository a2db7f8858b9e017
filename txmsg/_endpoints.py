# -*- test-case-name: txmsg.test.test_tap_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Helpers for server endpoint strings, shared by the twistd plugins and the
operational options (so neither has to import the other).
"""

from __future__ import annotations

__all__ = ["loopback_by_default"]

_LOOPBACK = {"tcp": "127.0.0.1", "ssl": "127.0.0.1", "tcp6": r"\:\:1"}


def loopback_by_default(description: str) -> str:
    """
    Add a loopback C{interface=} to a TCP, TCP6 or SSL endpoint string that
    names none, so that nothing listens on every interface unless asked to
    (C{interface=0.0.0.0}).

    @param description: a server endpoint string.
    @return: the same string, restricted to loopback when it named no interface.
    """
    kind = description.split(":", 1)[0]
    if kind in _LOOPBACK and "interface=" not in description:
        return "{}:interface={}".format(description, _LOOPBACK[kind])
    return description
