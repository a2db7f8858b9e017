# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Rate and concurrency limits across worker processes (C{twistd -n
txmsg-worker}, three of them) on the real RabbitMQ and a private Redis.

C{TXMSG_LIMITS_TASKS} sets how many tasks the rate test sends (default
300: 6 s at 50/s; C{make test-limits} sends 1,000).
"""

from __future__ import annotations

import bisect
import itertools
import os
import tempfile
import time
from typing import Any

from twisted.trial.unittest import TestCase

from tests._redis_support import RedisServer
from tests._worker_support import OneQueueMixin, WorkerProcess, wait_until

TASKS = "tests._limits_tasks"
RATE = 50.0


def read_notes(path: str) -> list[tuple[str, float, int, int]]:
    """The lines the tasks wrote: (what, time, pid, n)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            what, when, pid, n = line.split()
            out.append((what, float(when), int(pid), int(n)))
    return out


def windows(starts: list[float], sliding: bool = False) -> list[int]:
    """
    Starts in each full 1-second window after the first second (see
    L{LimitsTests.test_rate}): back to back from the first start plus one
    second, or (C{sliding}) one beginning at every start.
    """
    starts = sorted(starts)
    first, last = starts[0] + 1.0, starts[-1]
    begins = [s for s in starts if first <= s <= last - 1.0] if sliding else []
    if not sliding:
        b = first
        while b + 1.0 <= last:
            begins.append(b)
            b += 1.0
    return [bisect.bisect_left(starts, b + 1.0) - bisect.bisect_left(starts, b) for b in begins]


class LimitsTests(OneQueueMixin, TestCase):
    """
    Three workers share the limits of their tasks through Redis.
    """

    queue_prefix = "txmsg-limits-test"
    timeout = 120

    def setUp(self) -> None:
        super().setUp()
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.stop)
        fd, self.notes = tempfile.mkstemp(prefix="txmsg-limits-", suffix=".txt")
        os.close(fd)
        self.addCleanup(os.unlink, self.notes)

    def workers(self, n: int = 3, *args: str) -> list[WorkerProcess]:
        out = []
        for i in range(n):
            w = WorkerProcess(
                [self.queue],
                "--redis",
                self.redis.url,
                "--name",
                "limits-{}-{}".format(i, os.getpid()),
                *args,
                tasks=TASKS,
            )
            self.addCleanup(w.cleanup)
            out.append(w)
        for w in out:
            w.start()
        return out

    def test_rate(self) -> None:
        """
        C{rate_limit="50/s"}, three workers: over every 1-second window
        from one second after the first start to the last start, the rate
        stays within 10% of 50, or, when a stall of the machine moved a few
        late starts into the next window, the two windows together stay
        within 10% of 100 (windows back to back from one second after
        the first start; windows beginning at every start are printed too:
        a task starts up to one delay tick, 100 ms, after its slot, so
        those see a start or two more or fewer).  The first second is left out: the first
        task runs at once while the rest are still being published and
        handed their slots (ramp-up); the last partial second has fewer
        starts than a full one (ramp-down).
        """
        count = int(os.environ.get("TXMSG_LIMITS_TASKS", "300"))
        workers = self.workers(3, "--prefetch", "20")
        for n in range(count):
            self.client.submit(self.queue, "rated", self.notes, n, reply=False)
        published = time.time()
        wait_until(
            lambda: len(read_notes(self.notes)) >= count, count / RATE + 30, "every task to start"
        )
        notes = read_notes(self.notes)
        self.assertEqual(sorted(n for _, _, _, n in notes), list(range(count)))
        starts = [t for _, t, _, _ in notes]
        counts, sliding = windows(starts), windows(starts, sliding=True)
        span = max(starts) - min(starts)
        print("\npublished {:.2f} s after the first start".format(published - min(starts)))
        print(
            "\nrate: {} tasks in {:.2f} s ({:.1f}/s overall); {} back-to-back 1-s windows: "
            "min {} max {}; sliding windows: min {} max {}; runs per worker {}; windows {}".format(
                count,
                span,
                (count - 1) / span,
                len(counts),
                min(counts),
                max(counts),
                min(sliding),
                max(sliding),
                sorted(sum(1 for _, _, p, _ in notes if p == w.pid) for w in workers),
                counts,
            )
        )
        self.assertGreater(len(counts), 0)
        low, high = RATE * 0.9, RATE * 1.1
        for i, c in enumerate(counts):
            if low <= c <= high:
                continue
            # A stall of the (shared, loaded) machine moves late starts into
            # the next window: then the two together are still on the rate.
            pairs = [c + counts[j] for j in (i - 1, i + 1) if 0 <= j < len(counts)]
            self.assertTrue(
                any(2 * low <= p <= 2 * high for p in pairs),
                "window {} has {} starts (and its neighbours do not make up for it): {}".format(
                    i, c, counts
                ),
            )
        # Every worker took part.
        self.assertEqual(len({p for _, _, p, _ in notes}), 3)

    def test_concurrency_across_sigkill(self) -> None:
        """
        C{max_concurrency=2} (lease 2 s), three workers: never three at
        once, including when a worker holding a slot is SIGKILLed.  The
        killed run counts as running until its slot can first come back:
        the kill plus two thirds of the lease (it was renewed at most a
        third of the lease before).  Its task is redelivered and runs again,
        and after that point two tasks run at once again: the slot came back.
        """
        lease = 2.0
        workers = self.workers(3, "--prefetch", "3")
        count, seconds = 20, 0.4
        for n in range(count):
            self.client.submit(self.queue, "slot", self.notes, n, seconds, reply=False)

        def holding() -> Any:
            notes = read_notes(self.notes)
            ended = {n for what, _, _, n in notes if what == "end"}
            running = [(p, n) for what, t, p, n in notes if what == "start" and n not in ended]
            started = {n for what, _, _, n in notes if what == "start"}
            return running if len(started) >= 4 and running else None

        wait_until(lambda: holding() is not None, 30, "a task to hold a slot")
        pid, victim = holding()[0]
        killed = next(w for w in workers if w.pid == pid)
        killed.kill()
        killed_at = time.time()
        wait_until(
            lambda: (
                {n for what, _, _, n in read_notes(self.notes) if what == "end"}
                >= set(range(count))
            ),
            60,
            "every task to end",
        )
        notes = read_notes(self.notes)
        intervals = []
        for what, t, p, n in notes:
            if what != "start":
                continue
            ends = [e for w2, e, p2, n2 in notes if w2 == "end" and n2 == n and p2 == p and e >= t]
            if ends:
                intervals.append((t, min(ends)))
            else:  # the run killed with its worker
                self.assertEqual((p, n), (pid, victim))
                intervals.append((t, killed_at + lease * 2 / 3))
        events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
        running = most = 0
        for _, step in events:
            running += step
            most = max(most, running)
        print(
            "\nconcurrency: {} runs, at most {} at once; killed pid {} running task {}; "
            "first start after the kill at +{:.2f} s".format(
                len(intervals),
                most,
                pid,
                victim,
                min(s for s, _ in intervals if s > killed_at) - killed_at,
            )
        )
        self.assertEqual(most, 2)
        self.assertGreater(len(intervals), count)  # the victim ran again
        # The killed worker's slot came back: two at once again after it.
        back = killed_at + lease * 2 / 3
        after = sorted((s, e) for s, e in intervals if s >= back)
        again = [b[0] - killed_at for a, b in itertools.pairwise(after) if b[0] < a[1]]
        print("both slots in use again {:.2f} s after the kill".format(again[0] if again else -1))
        self.assertTrue(again, "the killed worker's slot never came back")
