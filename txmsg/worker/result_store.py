# -*- test-case-name: txmsg.test.test_worker_results -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{IResultStore}: where a task's status and result can be read from any
process, and where a task is revoked.  L{txmsg.worker.results.RedisResultStore}
provides it; task handles read results through it.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Interface

from txmsg.worker.states import TaskState

__all__ = ["IResultStore"]


class IResultStore(Interface):
    """
    Read task states, wait for a task to finish, revoke a task.
    """

    def status(task_id: str) -> Deferred[TaskState | None]:
        """
        The stored state of C{task_id} now, or L{None} when nothing is
        stored (never submitted with results on, or expired from the store).
        """

    def wait(task_id: str, timeout: float | None) -> Deferred[TaskState]:
        """
        Fire with the state of C{task_id} once it is terminal (at once when
        it already is); fail with C{ResultTimeout} after C{timeout} seconds
        (L{None}: no limit).  Cancelling the Deferred stops the wait.
        """

    def revoke(task_id: str) -> Deferred[None]:
        """
        Revoke C{task_id}: a queued copy is not run when it is delivered, a
        running one is cancelled on whichever worker holds it.
        """
