# -*- test-case-name: txmsg.test.test_ordered -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.ordered}.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from txmsg.ordered import OrderedMultiService, stop_in_order
from txmsg.test._logs import captured_global_logs


class Recorded(Service):
    """
    A service that records when it stops; its stop can be held open or fail.
    """

    def __init__(self, name: str, stopped: list[str], hold: bool = False, error: bool = False):
        self.setName(name)
        self.stopped = stopped
        self.hold: Deferred[None] | None = Deferred() if hold else None
        self.error = error

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self.stopped.append(str(self.name))
        if self.error:
            return fail(RuntimeError("cannot stop " + str(self.name)))
        return self.hold


class OrderedMultiServiceTests(SynchronousTestCase):
    """
    L{OrderedMultiService} stops a child only after its users stopped.
    """

    def setUp(self) -> None:
        self.stopped: list[str] = []
        self.logged = captured_global_logs(self)
        self.top = OrderedMultiService()

    def add(self, name: str, **kw: bool) -> Recorded:
        service = Recorded(name, self.stopped, **kw)
        service.setServiceParent(self.top)
        return service

    def test_used_service_waits_for_its_user(self) -> None:
        """
        A service stops only once every service that uses it has finished
        stopping, although it was added first.
        """
        redis = self.add("redis")
        worker = self.add("worker", hold=True)
        self.top.uses(worker, redis)
        self.top.startService()
        d = self.top.stopService()
        self.assertEqual(self.stopped, ["worker"])
        self.assertNoResult(d)
        assert worker.hold is not None
        worker.hold.callback(None)
        self.assertEqual(self.stopped, ["worker", "redis"])
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(self.top.running)

    def test_unrelated_services_stop_together(self) -> None:
        """
        Services nothing orders stop at once, the last added first, as with
        C{MultiService}.
        """
        self.add("a", hold=True)
        self.add("b", hold=True)
        self.top.startService()
        self.top.stopService()
        self.assertEqual(self.stopped, ["b", "a"])

    def test_failed_stop_is_logged_and_the_rest_stop(self) -> None:
        """
        A user whose stop fails is logged, and the service it uses still
        stops after it.
        """
        redis = self.add("redis")
        worker = self.add("worker", error=True)
        self.top.uses(worker, redis)
        self.top.startService()
        self.successResultOf(self.top.stopService())
        self.assertEqual(self.stopped, ["worker", "redis"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        [event] = [e for e in self.logged if "log_failure" in e]
        self.assertEqual(event["service"], "Recorded 'worker'")

    def test_chain(self) -> None:
        """
        Dependencies are transitive: health uses the worker, which uses
        Redis.
        """
        redis = self.add("redis")
        worker = self.add("worker")
        health = self.add("health")
        self.top.uses(worker, redis)
        self.top.uses(health, worker)
        self.assertEqual(
            [[s.name for s in wave] for wave in self.top.stop_order()],
            [["health"], ["worker"], ["redis"]],
        )

    def test_cycle(self) -> None:
        """
        Services that use each other stop together, with a warning, rather
        than never.
        """
        a = self.add("a")
        b = self.add("b")
        self.top.uses(a, b)
        self.top.uses(b, a)
        self.top.startService()
        self.successResultOf(self.top.stopService())
        self.assertEqual(sorted(self.stopped), ["a", "b"])
        self.assertTrue(any("cycle" in e.get("log_format", "") for e in self.logged))

    def test_not_running_child_is_not_stopped(self) -> None:
        """
        A child that is already stopped is not stopped again.
        """
        done = self.add("done")
        self.top.startService()
        done.stopService()
        self.stopped.clear()
        self.successResultOf(self.top.stopService())
        self.assertEqual(self.stopped, [])


class StopInOrderTests(SynchronousTestCase):
    """
    L{stop_in_order} stops services one after the other.
    """

    def test_sequential_and_failure_does_not_skip(self) -> None:
        """
        The second service stops only once the first has, and a failing one
        is logged without skipping the next.
        """
        stopped: list[str] = []
        first = Recorded("first", stopped, hold=True)
        broken = Recorded("broken", stopped, error=True)
        last = Recorded("last", stopped)
        for service in (first, broken, last):
            service.startService()
        d = Deferred.fromCoroutine(stop_in_order([first, None, broken, last]))
        self.assertEqual(stopped, ["first"])
        assert first.hold is not None
        first.hold.callback(None)
        self.successResultOf(d)
        self.assertEqual(stopped, ["first", "broken", "last"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
