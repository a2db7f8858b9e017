# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.schedule.service.SchedulerService} on a fake clock with the
in-memory Redis: leadership, exactly-once ticks, failover, stalls.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from txmsg.schedule import ONCE_HEADER, Entry, Schedule, SchedulerService, task_sender
from txmsg.test._logs import captured_global_logs
from txmsg.test._optional import missing
from txmsg.testing import MemoryRedis


class Recorder:
    """A sender that records task ids; can hang or fail on demand."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.hang: list[Deferred[None]] | None = None
        self.failing = False

    def __call__(self, entry: Entry, task_id: str) -> Deferred[Any]:
        if self.failing:
            return fail(ConnectionError("broker down"))
        self.sent.append(task_id)
        if self.hang is not None:
            d: Deferred[None] = Deferred()
            self.hang.append(d)
            return d
        return succeed(None)


def every_second(catch_up: bool = True) -> Schedule:
    schedule = Schedule()
    schedule.every("tick", 1, task="ping", catch_up=catch_up)
    return schedule


class SchedulerServiceTests(SynchronousTestCase):
    """
    Ticks fire exactly once across schedulers sharing one Redis.
    """

    skip = missing("lupa", extra="testing")

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.memory = MemoryRedis(self.clock)
        self.redis = self.memory.service()
        self.redis.startService()
        self.logs = captured_global_logs(self)

    def lines(self) -> list[str]:
        return [formatEvent(event) for event in self.logs]

    def scheduler(
        self, owner: str, recorder: Recorder, schedule: Schedule | None = None
    ) -> SchedulerService:
        service = SchedulerService(
            schedule or every_second(),
            recorder,
            self.redis,
            owner=owner,
            lease=3.0,
            reactor=self.clock,
        )
        return service

    def run_for(self, seconds: float, step: float = 0.25) -> None:
        for _ in range(int(seconds / step)):
            self.clock.advance(step)

    def test_one_scheduler_fires_each_tick(self) -> None:
        recorder = Recorder()
        service = self.scheduler("a", recorder)
        if True:
            service.startService()
            self.run_for(10.05)
        self.assertTrue(service.leading)
        self.assertEqual(len(recorder.sent), 10)
        self.assertEqual(recorder.sent[0], "tick:1970-01-12T13:46:41Z")
        self.assertEqual(len(set(recorder.sent)), 10)

    def test_two_schedulers_one_leader(self) -> None:
        a, b = Recorder(), Recorder()
        first, second = self.scheduler("a", a), self.scheduler("b", b)
        if True:
            first.startService()
            second.startService()
            self.run_for(20.05)
        self.assertEqual((first.leading, second.leading), (True, False))
        self.assertEqual(len(a.sent), 20)
        self.assertEqual(b.sent, [])

    def test_dead_leader_is_replaced_and_no_tick_is_lost(self) -> None:
        """
        The leader dies without releasing the lease: after the lease the
        other takes over and (catch-up) fires every missed tick, once.
        """
        a, b = Recorder(), Recorder()
        first, second = self.scheduler("a", a), self.scheduler("b", b)
        if True:
            first.startService()
            second.startService()
            self.run_for(10.05)
            # SIGKILL: its timers stop, the lease stays until it expires.
            assert first._call is not None
            first._call.cancel()
            self.run_for(20.0)
        self.assertTrue(second.leading)
        ids = a.sent + b.sent
        self.assertEqual(len(ids), 30)
        self.assertEqual(len(set(ids)), 30)
        self.assertGreater(len(b.sent), 15)

    def test_clean_stop_hands_over_at_once(self) -> None:
        a, b = Recorder(), Recorder()
        first, second = (
            self.scheduler("a", a, every_second(catch_up=False)),
            self.scheduler("b", b, every_second(catch_up=False)),
        )
        if True:
            first.startService()
            second.startService()
            self.run_for(5.05)
            self.successResultOf(first.stopService())
            self.run_for(5.0)
        ids = a.sent + b.sent
        # No tick missed: the lease was released, the other took over within
        # its renewal interval (1 s) and fired the one missed tick.
        self.assertEqual(len(set(ids)), 10)
        self.assertEqual(len(ids), 10)

    def test_stalled_leader_cannot_record(self) -> None:
        """
        A leader stalled past its lease (its publish hangs) is replaced; when
        it comes back its record is refused and it steps down.  The tick it
        was sending is sent again by the new leader with the same id, which
        the worker runs once.
        """
        a, b = Recorder(), Recorder()
        first, second = self.scheduler("a", a), self.scheduler("b", b)
        if True:
            first.startService()
            self.run_for(2.05)
            second.startService()
            a.hang = []
            self.run_for(10.0)
            self.assertTrue(second.leading)
            for d in a.hang:
                d.callback(None)
            self.run_for(3.0)
        self.assertFalse(first.leading)
        self.assertTrue(second.leading)
        distinct = set(a.sent) | set(b.sent)
        self.assertEqual(len(distinct), 15)
        self.assertEqual(set(a.sent) & set(b.sent), {a.sent[-1]})
        self.assertTrue(any("stops leading" in line for line in self.lines()))

    def test_failed_publish_is_retried_with_the_same_id(self) -> None:
        recorder = Recorder()
        service = self.scheduler("a", recorder)
        if True:
            service.startService()
            self.run_for(2.05)
            recorder.failing = True
            self.run_for(5.0)
            recorder.failing = False
            self.run_for(1.0)
        self.assertEqual(len(recorder.sent), 8)
        self.assertEqual(len(set(recorder.sent)), 8)
        # Attempts at 3, 4, 5, 6 and 7 s, one a second: no hot loop.
        self.assertEqual(sum("Could not fire" in line for line in self.lines()), 5)

    def test_restart_fires_once_for_missed_ticks(self) -> None:
        """
        Without catch-up, a scheduler that was down fires one tick for the
        ticks it missed, then each tick again.
        """
        recorder = Recorder()
        schedule = every_second(catch_up=False)
        if True:
            service = self.scheduler("a", recorder, schedule)
            service.startService()
            self.run_for(3.05)
            self.successResultOf(service.stopService())
            self.run_for(30.0)
            again = self.scheduler("b", recorder, schedule)
            again.startService()
            self.run_for(2.0)
        self.assertEqual(len(recorder.sent), 3 + 1 + 2)

    def test_without_redis_fires_alone_and_warns(self) -> None:
        recorder = Recorder()
        service = SchedulerService(every_second(), recorder, None, owner="solo", reactor=self.clock)
        if True:
            service.startService()
            self.run_for(3.05)
        self.assertEqual(len(recorder.sent), 3)
        self.assertTrue(any("without Redis" in line for line in self.lines()))


class TaskSenderTests(SynchronousTestCase):
    """
    L{task_sender} sends a tick as a task with its id and the once header.
    """

    def test_submit(self) -> None:
        calls: list[tuple[Any, ...]] = []

        class Client:
            def submit(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
                calls.append((args, kwargs))
                return succeed("id")

        schedule = Schedule()
        entry = schedule.every("e", 1, task="ping", args=(1,), kwargs={"k": 2})
        other = schedule.every("f", 1, task="pong", queue="special")
        send = task_sender(Client(), "default-q")  # type: ignore[arg-type]
        self.successResultOf(send(entry, "e:1"))
        self.successResultOf(send(other, "f:1"))
        self.assertEqual(
            calls,
            [
                (
                    ("ping", (1,), {"k": 2}),
                    dict(queue="default-q", task_id="e:1", headers={ONCE_HEADER: 1}),
                ),
                (("pong", (), {}), dict(queue="special", task_id="f:1", headers={ONCE_HEADER: 1})),
            ],
        )
