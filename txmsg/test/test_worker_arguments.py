# -*- test-case-name: txmsg.test.test_worker_arguments -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.tasks.TaskSpec.check_arguments}: whether a task's
function accepts the arguments of a delivery, answered once per call shape.
"""

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txmsg.worker.tasks import TaskSpec


def add(x: int, y: int) -> int:
    return x + y


def with_context(x: int, context: Any) -> int:
    return x


class Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, x: int) -> int:
        return x


class CheckArgumentsTests(SynchronousTestCase):
    def test_fits(self) -> None:
        """
        Arguments that bind give L{None}, positional or by keyword.
        """
        spec = TaskSpec("add", add)
        self.assertIsNone(spec.check_arguments((1, 2), {}))
        self.assertIsNone(spec.check_arguments((1,), {"y": 2}))
        self.assertIsNone(spec.check_arguments((), {"y": 2, "x": 1}))

    def test_reasons(self) -> None:
        """
        Arguments that do not bind give Python's reason.
        """
        spec = TaskSpec("add", add)
        self.assertEqual(spec.check_arguments((1,), {}), "missing a required argument: 'y'")
        self.assertEqual(spec.check_arguments((1, 2, 3), {}), "too many positional arguments")
        self.assertEqual(
            spec.check_arguments((1, 2), {"z": 3}), "got an unexpected keyword argument 'z'"
        )

    def test_same_shape_same_answer(self) -> None:
        """
        The answer depends on the shape of the call, not on the values (it
        is cached per shape): asked again, the same.
        """
        spec = TaskSpec("add", add)
        for values in [(1, 2), ("a", None), ([], {})]:
            self.assertIsNone(spec.check_arguments(values, {}))
        for _ in range(2):
            self.assertEqual(spec.check_arguments((), {}), "missing a required argument: 'x'")

    def test_context(self) -> None:
        """
        A task that wants the context gets it as a keyword argument: the
        sender must not pass it.
        """
        spec = TaskSpec("c", with_context, wants_context=True)
        self.assertIsNone(spec.check_arguments((1,), {}))
        self.assertIn("context", spec.check_arguments((1,), {"context": 2}) or "")

    def test_unhashable_callable(self) -> None:
        """
        A callable that cannot be a cache key is checked all the same.
        """
        spec = TaskSpec("u", Unhashable())
        self.assertIsNone(spec.check_arguments((1,), {}))
        self.assertEqual(spec.check_arguments((), {}), "missing a required argument: 'x'")

    def test_no_signature(self) -> None:
        """
        A callable without a signature (some builtins) is not checked.
        """
        spec = TaskSpec("b", max)
        self.assertIsNone(spec.check_arguments((1, 2, 3, 4), {}))
