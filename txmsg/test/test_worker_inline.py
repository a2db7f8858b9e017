# -*- test-case-name: txmsg.test.test_worker_inline -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A task that runs on the reactor runs in the stack of the delivery that
brought it: handled and settled without waiting for a reactor turn (the
event registry's C{dispatch_now}), with the same outcomes as before.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp import Disposition
from txmsg.events import Event
from txmsg.testing import WorkerHarness
from txmsg.worker.brokers.interfaces import IncomingMessage
from txmsg.worker.envelope import CONTENT_TYPE, Task, encode_task
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.tasks import TaskCatalog


def message(task: str, *args: Any) -> IncomingMessage:
    """A delivery of C{task(*args)} with no reply address."""
    return IncomingMessage(
        body=encode_task(Task(task, args, {}, "id-" + task)),
        queue="tasks",
        headers={},
        content_type=CONTENT_TYPE,
        message_id=None,
        reply_to=None,
        correlation_id=None,
        redelivered=False,
        handle=None,
    )


class InlineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ran: list[Any] = []
        tasks = TaskCatalog()

        @tasks.task
        def noop() -> None:
            self.ran.append("noop")

        @tasks.task
        def exits() -> None:
            raise SystemExit(3)

        @tasks.task
        def later() -> Deferred[str]:
            return succeed("later")

        self.h = WorkerHarness(tasks, retry=RetryPolicy(max_retries=0, jitter=0.0), start=False)
        self.pipeline = self.h.worker.pipeline

    def handle(self, delivery: IncomingMessage) -> Deferred[Any]:
        self.pipeline.install(lambda f, *a, **kw: succeed(f(*a, **kw)))
        self.addCleanup(self.pipeline.uninstall)
        return ensureDeferred(self.pipeline.handle(delivery))

    def test_settled_in_the_callers_stack(self) -> None:
        """
        A plain task runs and its delivery is settled before C{handle}
        returns: no reactor turn, no delayed call left.
        """
        d = self.handle(message("noop"))
        self.assertEqual(self.ran, ["noop"])
        self.assertEqual(self.successResultOf(d), Disposition.ACK)
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_deferred_result_still_waited_for(self) -> None:
        """
        A task returning a Deferred is still waited for (here it has fired).
        """
        self.assertEqual(self.successResultOf(self.handle(message("later"))), Disposition.ACK)

    def test_system_exit_is_the_tasks_failure(self) -> None:
        """
        C{SystemExit} raised by a task on the reactor is that task's failure
        (as with C{maybeDeferred} before): it is dead-lettered, and it never
        reaches the reactor.
        """
        self.h.start()
        self.h.submit("exits")
        self.h.run_until_idle()
        [dead] = self.h.dead_letters()
        self.assertEqual((dead.reason, dead.error_type), ("failed", "SystemExit"))
        self.h.submit("noop")
        self.h.run_until_idle()
        self.assertEqual(self.ran, ["noop"])
        self.successResultOf(self.h.stop())

    def test_observers_see_the_task(self) -> None:
        """
        Other handlers of the task's event (monitoring globs) run too, in
        the same delivery.
        """
        seen: list[Event] = []
        self.h.events.add("task.*", seen.append)
        self.successResultOf(self.handle(message("noop")))
        self.assertEqual([e.payload.task.name for e in seen], ["noop"])
