# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests of C{twistd txmsg-scheduler} against the real servers:
two schedulers, a worker, the leader SIGKILLed in the middle; every tick
runs exactly once.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
from datetime import datetime

from twisted.trial.unittest import TestCase

from tests._process import TwistdProcess, script
from tests._redis_support import redis_py
from tests._worker_support import (
    REDIS_URL,
    SHARED_URL,
    OneQueueMixin,
    wait_until,
    worker_env,
)

TICKS = 60


def tick_time(task_id: str) -> float:
    """The tick instant of a task id C{<entry>:<UTC time>Z}."""
    return datetime.fromisoformat(task_id.split(":", 1)[1].rstrip("Z") + "+00:00").timestamp()


class SchedulerFailoverTests(OneQueueMixin, TestCase):
    """
    Ticks fire exactly once across two schedulers and a leader's death.
    """

    queue_prefix = "txmsg-scheduler-test"
    timeout = 180

    def setUp(self) -> None:
        OneQueueMixin.setUp(self)
        fd, self.out = tempfile.mkstemp(prefix="txmsg-ticks-")
        os.close(fd)
        self.addCleanup(os.unlink, self.out)
        self.name = self.queue  # a schedule name nobody else uses
        self.entry = "tick-" + self.queue.rsplit("-", 1)[-1]
        self.addCleanup(self.forget_keys)

    def env(self) -> dict[str, str]:
        return worker_env(
            TXMSG_TEST_QUEUE=self.queue, TXMSG_TEST_OUT=self.out, TXMSG_TEST_ENTRY=self.entry
        )

    def forget_keys(self) -> None:
        """Delete the lease, the record and the workers' claims on the tick ids."""
        peer = redis_py()
        try:
            keys = list(peer.scan_iter(match="txmsg:{schedule:" + self.name + "}:*"))
            keys += list(peer.scan_iter(match="txmsg:task-ran:" + self.entry + ":*"))
            if keys:
                peer.delete(*keys)
        finally:
            peer.close()

    def scheduler(self, owner: str) -> TwistdProcess:
        process = TwistdProcess(
            "txmsg-scheduler",
            [
                "--schedule",
                "tests._schedule_ticks",
                "--amqp",
                SHARED_URL,
                "--redis",
                REDIS_URL,
                "--name",
                self.name,
                "--owner",
                owner,
                "--lease",
                "3",
            ],
            ready="Scheduler {} started".format(owner),
            env=self.env(),
        )
        self.addCleanup(process.cleanup)
        return process.start()

    def runs(self) -> list[str]:
        with open(self.out) as f:
            return f.read().split()

    def test_every_tick_once_across_a_leader_kill(self) -> None:
        self.worker("--redis", REDIS_URL)
        a = self.scheduler("sched-a")
        b = self.scheduler("sched-b")
        wait_until(lambda: len(self.runs()) >= 5, 30, "the first ticks")
        leader, other = (a, b) if "is the leader" in a.log() else (b, a)
        self.assertIn("is the leader", leader.log())
        wait_until(lambda: len(self.runs()) >= TICKS // 2, 60, "half the ticks")
        leader.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        leader.process.wait(10)  # type: ignore[union-attr]
        wait_until(lambda: "is the leader" in other.log(), 30, "the other scheduler to lead")
        wait_until(lambda: len(set(self.runs())) >= TICKS + 2, 60, "{} ticks".format(TICKS))
        status = other.terminate()
        other.assert_clean_stop(status)
        runs = self.runs()
        # Exactly once: no id ran twice ...
        self.assertEqual(len(runs), len(set(runs)), "some ticks ran twice: {}".format(runs))
        # ... and none is missing: consecutive seconds from the first to the last.
        times = sorted(tick_time(r) for r in runs)
        self.assertEqual(times, [times[0] + i for i in range(len(times))])
        self.assertGreaterEqual(len(times), TICKS)
        stamp = r":\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
        self.assertTrue(all(re.match("^" + self.entry + stamp, r) for r in runs), runs)
        self.assertIn("Fired " + self.entry, other.log())

    def test_schedule_list_and_run(self) -> None:
        """C{txmsg schedule list} shows the entry; C{run} sends its task now."""
        import subprocess

        env = self.env()
        listed = subprocess.run(
            [
                script("txmsg"),
                "schedule",
                "list",
                "--schedule",
                "tests._schedule_ticks",
                "--redis",
                REDIS_URL,
                "--name",
                self.name,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("every 1s catch-up", listed.stdout)
        self.assertIn("record_id", listed.stdout)
        self.worker()
        ran = subprocess.run(
            [
                script("txmsg"),
                "schedule",
                "run",
                self.entry,
                "--schedule",
                "tests._schedule_ticks",
                "--amqp",
                SHARED_URL,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        self.assertEqual(ran.returncode, 0, ran.stderr)
        task_id = ran.stdout.strip()
        self.assertTrue(task_id.startswith(self.entry + ":run:"), task_id)
        wait_until(lambda: task_id in self.runs(), 20, "the task to run")
