# -*- test-case-name: txmsg.test.test_worker_tasks -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.tasks}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.events import EventRegistry
from txmsg.worker.envelope import Task
from txmsg.worker.tasks import _CANCELLED, TaskCatalog, TaskContext, load_tasks


def inline_thread(function: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
    """
    Stand-in for the thread pool: run at once, record that it was used.
    """
    inline_thread.calls.append(function)  # type: ignore[attr-defined]
    inline_thread.calls.extend(a for a in args if callable(a))  # type: ignore[attr-defined]
    return succeed(function(*args, **kwargs))


inline_thread.calls = []  # type: ignore[attr-defined]


class TaskCatalogTests(SynchronousTestCase):
    """
    Tests for L{TaskCatalog}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.events = EventRegistry(reactor=self.clock)
        self.tasks = TaskCatalog()

    def run_task(self, task: Task) -> tuple[TaskContext, Any]:
        handlers = self.tasks.install(self.events, inline_thread)
        context = TaskContext(task=task)
        d = self.events.dispatch("task." + task.name, context)
        self.clock.advance(0)
        result = self.successResultOf(d)
        [outcome] = [o for o in result.outcomes if o.handler is handlers[task.name]]
        return context, outcome

    def test_declare_forms(self) -> None:
        """
        C{@tasks.task} and C{@tasks.task(...)} both declare and return the
        function unchanged.
        """

        @self.tasks.task
        def plain(x: int) -> int:
            return x

        @self.tasks.task(name="renamed", blocking=True, timeout=3, max_retries=2)
        def original(x: int) -> int:
            return x

        self.assertEqual(plain(1), 1)
        self.assertEqual(self.tasks.names(), ["plain", "renamed"])
        spec = self.tasks.get("renamed")
        assert spec is not None
        self.assertEqual((spec.blocking, spec.timeout, spec.max_retries), (True, 3, 2))
        self.assertEqual(spec.event_name, "task.renamed")
        self.assertIsNone(self.tasks.get("missing"))

    def test_invalid_declarations(self) -> None:
        """
        Non-callables, duplicate names, bad limits and blocking coroutines
        are refused at declaration time.
        """
        self.tasks.add(lambda: None, name="x")
        self.assertRaises(TypeError, self.tasks.add, 42)
        self.assertRaises(ValueError, self.tasks.add, lambda: None, name="x")
        self.assertRaises(ValueError, self.tasks.add, lambda: None, name="y", timeout=0)
        self.assertRaises(ValueError, self.tasks.add, lambda: None, name="z", max_retries=-1)

        async def coro() -> None:
            pass

        self.assertRaises(ValueError, self.tasks.add, coro, blocking=True)

    def test_runs_through_the_registry(self) -> None:
        """
        An installed task runs when its event is dispatched, with the task's
        arguments, and its value is the outcome.
        """
        self.tasks.add(lambda x, y=0: x + y, name="add")
        context, outcome = self.run_task(Task("add", (2,), {"y": 3}, "id"))
        self.assertEqual(outcome.value, 5)

    def test_coroutine_and_context(self) -> None:
        """
        A coroutine task runs; a task taking C{context} gets the running
        L{TaskContext}.
        """

        async def whoami(*, context: TaskContext) -> str:
            return context.task.id

        self.tasks.add(whoami)
        _, outcome = self.run_task(Task("whoami", (), {}, "the-id"))
        self.assertEqual(outcome.value, "the-id")

    def test_blocking_uses_thread_runner(self) -> None:
        """
        A blocking task runs through the thread runner.
        """

        def heavy() -> str:
            return "done"

        self.tasks.add(heavy, blocking=True)
        _, outcome = self.run_task(Task("heavy", (), {}, "i"))
        self.assertEqual(outcome.value, "done")
        self.assertIn(heavy, inline_thread.calls)  # type: ignore[attr-defined]

    def test_failure_is_outcome(self) -> None:
        """
        A task that raises has a failed outcome.
        """

        def boom() -> None:
            raise ZeroDivisionError("nope")

        self.tasks.add(boom)
        _, outcome = self.run_task(Task("boom", (), {}, "i"))
        self.assertTrue(outcome.failure.check(ZeroDivisionError))
        self.flushLoggedErrors(ZeroDivisionError)

    def test_cancel(self) -> None:
        """
        Cancelling the context cancels the task's Deferred and records why;
        the outcome is the C{_CANCELLED} marker, not a failure (so nothing is
        logged as a failed handler); cancelling a finished task does nothing.
        """
        pending: Deferred[None] = Deferred()
        self.tasks.add(lambda: pending, name="wait")
        handlers = self.tasks.install(self.events, inline_thread)
        context = TaskContext(task=Task("wait", (), {}, "i"))
        d = self.events.dispatch("task.wait", context)
        self.clock.advance(0)
        self.assertNoResult(d)
        self.assertTrue(context.cancel("stop-job"))
        [outcome] = self.successResultOf(d).outcomes
        self.assertIs(outcome.handler, handlers["wait"])
        self.assertIsNone(outcome.failure)
        self.assertIs(outcome.value, _CANCELLED)
        self.assertEqual(context.cancelled_because, "stop-job")
        self.assertFalse(context.cancel("again"))
        self.assertEqual(self.flushLoggedErrors(CancelledError), [])

    def test_timeout(self) -> None:
        """
        A task with a timeout is cancelled by the registry when it runs over.
        """
        self.tasks.add(lambda: Deferred(), name="slow", timeout=5)
        handlers = self.tasks.install(self.events, inline_thread)
        d = self.events.dispatch("task.slow", TaskContext(task=Task("slow", (), {}, "i")))
        self.clock.advance(0)
        self.clock.advance(5)
        [outcome] = self.successResultOf(d).outcomes
        self.assertIs(outcome.handler, handlers["slow"])
        self.assertTrue(outcome.timed_out)
        self.flushLoggedErrors()


class LoadTasksTests(SynchronousTestCase):
    """
    Tests for L{load_tasks}.
    """

    def test_module_default(self) -> None:
        """
        A module's registry called C{tasks} is chosen.
        """
        registry = load_tasks("txmsg.test._worker_tasks_sample")
        self.assertEqual(registry.names(), ["add"])

    def test_module_attribute(self) -> None:
        """
        C{module:attribute} names the registry.
        """
        self.assertEqual(load_tasks("txmsg.test._worker_tasks_sample:other").names(), ["ignored"])

    def test_errors(self) -> None:
        """
        A missing module, a missing attribute or a module without a registry
        is a one-line ValueError naming it.
        """
        for spec, text in [
            ("txmsg.test.no_such_module", "cannot import task module 'txmsg.test.no_such_module'"),
            ("txmsg.test._worker_tasks_sample:nope", "'nope' is not a TaskCatalog"),
            ("txmsg.worker.retry", "defines no TaskCatalog"),
        ]:
            e = self.assertRaises(ValueError, load_tasks, spec)
            self.assertIn(text, str(e))
            self.assertNotIn("\n", str(e))
