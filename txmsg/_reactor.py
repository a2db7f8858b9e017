# -*- test-case-name: txmsg.test.test_helpers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Resolving the default reactor late, in one place (as Twisted's own
C{twisted.application._client_service._maybeGlobalReactor} does).

Library classes take C{reactor=None} (or C{clock=None}) and call
L{maybe_global_reactor} when they need one, so that importing txmsg never
installs a reactor.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["maybe_global_reactor"]

_R = TypeVar("_R")


def maybe_global_reactor(reactor: _R | None) -> _R:
    """
    @param reactor: a reactor (or clock), or L{None}.
    @return: C{reactor}, or the global reactor when it is L{None}.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        result: Any = global_reactor
        return result
    return reactor
