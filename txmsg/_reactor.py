# -*- test-case-name: txmsg.test.test_helpers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Resolving the default reactor late, in one place (as Twisted's own
C{twisted.application._client_service._maybeGlobalReactor} does), and the
type that names what txmsg's services need of a reactor.

Library classes take C{reactor=None} (or C{clock=None}) and call
L{maybe_global_reactor} when they need one, so that importing txmsg never
installs a reactor.

Public C{reactor=} / C{clock=} parameters are typed C{IReactorTime}: it is
what every txmsg service calls on the reactor itself (deadlines, back-off,
heartbeats).  A service that connects or listens hands the same object to
Twisted's endpoints, which need C{IReactorTCP} (and the worker's thread pool
C{IReactorFromThreads}): any real reactor, or C{MemoryReactorClock} in
tests, provides them; a bare C{Clock} serves a service that is never started.
(zope interfaces cannot be intersected in a type, and a C{typing.Protocol}
naming them all would not be accepted where Twisted's APIs name
C{IReactorTime}.)
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from twisted.internet.interfaces import IReactorTime

__all__ = ["maybe_global_reactor"]

_R = TypeVar("_R")


@overload
def maybe_global_reactor(reactor: None) -> IReactorTime: ...


@overload
def maybe_global_reactor(reactor: _R | None) -> _R: ...


def maybe_global_reactor(reactor: Any) -> Any:
    """
    @param reactor: a reactor (or clock), or L{None}.
    @return: C{reactor}, or the global reactor when it is L{None}.
    """
    if reactor is None:
        # imported late: library code must never install the global reactor
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor
