# -*- test-case-name: txmsg.test.test_worker_results -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What a task reference (L{txmsg.worker.handles.TaskRef}) needs from a
results store: L{IResultStore}.

The Redis results store (C{--results redis://...} on the worker,
C{results=} on the client) provides it; the worker records each task's
status there and any process can read it.  A L{TaskRef} only delegates
C{result()}, C{status()} and C{revoke()} to the store it was given, so a
test may pass any object that provides this interface.

The statuses a store reports: C{pending}, C{started}, C{retrying},
C{succeeded}, C{failed}, C{dead-lettered}, C{revoked}, C{expired}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

__all__ = ["FINAL_STATUSES", "IResultStore", "ITaskState"]

#: The statuses after which a task's state no longer changes.
FINAL_STATUSES = frozenset({"succeeded", "failed", "dead-lettered", "revoked", "expired"})


class ITaskState(Interface):
    """
    A task's state as a results store recorded it.
    """

    status = Attribute("One of the statuses above, e.g. C{'succeeded'}.")
    result = Attribute("The task's return value (once C{succeeded}), else L{None}.")
    error = Attribute(
        "What failed (a mapping with C{type} and C{message}, or an object with "
        "those attributes) once C{failed} or C{dead-lettered}, else L{None}."
    )


class IResultStore(Interface):
    """
    Where task statuses and results are kept, readable from any process.
    """

    def status(task_id: str) -> Deferred[Any]:
        """
        The task's current state.

        @return: a Deferred firing with an L{ITaskState}, or L{None} when
            the store knows nothing about C{task_id} (never submitted, or
            its record expired).
        """

    def wait(task_id: str, timeout: float | None) -> Deferred[Any]:
        """
        Wait until the task reaches a final status (L{FINAL_STATUSES}).

        @param timeout: seconds; L{None} waits without a limit.
        @return: a Deferred firing with the final L{ITaskState}, or failing
            with a timeout error when C{timeout} passed first.
        """

    def revoke(task_id: str) -> Deferred[None]:
        """
        Revoke the task: a queued one is not run when it is delivered, a
        running one is cancelled.
        """
