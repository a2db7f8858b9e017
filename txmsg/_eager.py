# -*- test-case-name: txmsg.test.test_eager -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{start_eagerly}: C{Deferred.fromCoroutine} for coroutines that usually
finish without waiting.
"""

from __future__ import annotations

from collections.abc import Coroutine
from contextvars import copy_context
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed

__all__ = ["start_eagerly"]

_T = TypeVar("_T")


def start_eagerly(coro: Coroutine[Any, Any, _T]) -> Deferred[_T]:
    """
    Run C{coro} at once up to its first wait, as C{Deferred.fromCoroutine}
    would, and return a Deferred of its result.  A coroutine that finishes
    without waiting gets an already-fired Deferred, without going through
    Twisted's coroutine driver (a cancellable Deferred, its status and the
    resumption loop per call: the costly part when nothing waits), as
    asyncio's eager tasks do.

    A coroutine that does wait is handed, suspended, to
    C{Deferred.fromCoroutine}, which resumes it: the L{Deferred} it was
    waiting for is polled again (awaiting a Deferred re-checks its result
    whenever it is resumed), so cancellation and the rest are Twisted's.
    It runs in a copy of the caller's context variables throughout, as
    under C{Deferred.fromCoroutine}.

    @param coro: a coroutine that awaits only Deferreds and coroutines
        (what Twisted's driver supports).
    """
    context = copy_context()
    try:
        context.run(coro.send, None)
    except StopIteration as done:
        return succeed(done.value)
    except BaseException:
        return fail()
    # Waiting: Twisted's driver takes over (and copies this context).
    return context.run(Deferred.fromCoroutine, coro)
