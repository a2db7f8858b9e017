# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker on Redis with Sentinel, for real: C{twistd -n txmsg-worker} with
C{--broker}, C{--results} and C{--redis} all on one C{redis+sentinel://} URL
(scripts/redis-sentinel.sh's private master, replica and three Sentinels)
while the master is SIGKILLed mid-run.  Part of C{make test-cluster}.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests._streams_support import RedisClient, stream_key
from tests._worker_support import ROOT, WorkerProcess, unique, wait_until, worker_env
from tests.test_redis_sentinel import SentinelSet, sentinel_with_passwords


def sentinel_master(sentinel: SentinelSet) -> Any:
    """A redis-py client that finds the master through the Sentinels."""
    from redis.sentinel import Sentinel

    env = sentinel.env
    hosts = [("127.0.0.1", int(env[f"SENTINEL{n}"])) for n in (1, 2, 3)]
    finder = Sentinel(
        hosts,
        socket_timeout=2,
        sentinel_kwargs={"password": env["SENTINEL_PASSWORD"] or None, "socket_timeout": 2},
    )
    return finder.master_for("txmsg", password=env["PASSWORD"] or None, socket_timeout=2)


class SentinelClient(RedisClient):
    """The redis-py peer of the stream tests, on the Sentinels' master."""

    def __init__(self, sentinel: SentinelSet) -> None:
        self.redis = sentinel_master(sentinel)
        self.reply_queue = "txmsg:{replies-" + uuid.uuid4().hex + "}"
        self.replies = []
        self._last = "0-0"


class SentinelWorkerFailoverTests(SynchronousTestCase):
    """A Redis Streams worker follows a failover."""

    def setUp(self) -> None:
        self.sentinel = sentinel_with_passwords(self)
        self.queue = unique("txmsg-sentinel-worker")
        fd, self.record = tempfile.mkstemp(prefix="txmsg-sentinel-worker-")
        os.close(fd)
        self.addCleanup(os.unlink, self.record)
        self.client = SentinelClient(self.sentinel)
        self.addCleanup(self.client.redis.close)

    def recorded(self) -> list[str]:
        with open(self.record) as f:
            return [line.strip() for line in f if line.strip()]

    def txmsg(self, *args: str) -> subprocess.Popen[str]:
        """C{txmsg ARGS --redis <the Sentinel URL>}, running."""
        return subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "txmsg"), *args,
             "--redis", self.sentinel.url],
            cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def submit(self, ids: list[str], delay: float = 0.02) -> None:
        for task_id in ids:
            self.client.submit(self.queue, "record", self.record, task_id, delay,
                               task_id=task_id, reply=False)  # fmt: skip

    def test_worker_across_failover(self) -> None:
        """
        The master SIGKILLed mid-run: see L{check_worker_across_failover}.
        """
        self.check_worker_across_failover(kill=True)

    def test_worker_across_manual_failover(self) -> None:
        """
        C{SENTINEL FAILOVER} mid-run (maintenance: the old master stays up
        and is demoted to a replica, its clients disconnected): the same.
        """
        self.check_worker_across_failover(kill=False)

    def check_worker_across_failover(self, kill: bool) -> None:
        """
        Tasks submitted and replicated (C{WAIT 1}) before the master is
        killed all run, at least once, and their results are readable
        afterwards; the worker carries on with tasks submitted after the
        failover; tasks whose C{XADD} the old master answered without a
        replica confirming it are counted (and may be lost).
        """
        url = self.sentinel.url
        worker = WorkerProcess(
            [self.queue],
            "--prefetch", "10",
            "--results", url,
            "--redis", url,
            broker_args=["--broker", url, "--visibility-timeout", "3"],
        )  # fmt: skip
        self.addCleanup(worker.cleanup)
        worker.start(timeout=60)
        self.client.declare(self.queue)

        replicated = [f"r-{i}" for i in range(400)]
        self.submit(replicated)
        self.assertEqual(int(self.client.redis.execute_command("WAIT", 1, 5000)), 1)
        wait_until(lambda: len(self.recorded()) >= 50, 30, "tasks to flow")

        # Submissions racing the kill: each XADD answered by the old master,
        # with no WAIT: "acknowledged, maybe not replicated".
        racing: list[str] = []
        in_doubt: list[str] = []  # its XADD failed with the connection
        stop = threading.Event()

        def race() -> None:
            i = 0
            while not stop.is_set():
                task_id = f"x-{i}"
                try:
                    self.submit([task_id], delay=0.0)
                except Exception:
                    in_doubt.append(task_id)
                    return
                racing.append(task_id)
                i += 1

        # A client waiting for a result through the store's pub/sub across
        # the failover: a task that runs for 2 s, from just before the kill.
        slow = "slow-" + uuid.uuid4().hex[:8]
        self.submit([slow], delay=2.0)
        self.assertEqual(int(self.client.redis.execute_command("WAIT", 1, 5000)), 1)
        replicated.append(slow)
        waiting = self.txmsg("result", slow, "--wait", "--timeout", "90")
        self.addCleanup(waiting.kill)
        racer = threading.Thread(target=race)
        racer.start()
        time.sleep(0.3)
        if kill:
            killed = self.sentinel.run("kill-master").strip().splitlines()[-1]
        else:
            killed = self.sentinel.run("master").split()[-1]
            finder = self.client.redis.connection_pool.sentinel_manager.sentinels[0]
            self.assertTrue(finder.execute_command("SENTINEL FAILOVER", "txmsg"))
        started = time.monotonic()
        done_at_kill = len(set(self.recorded()))
        stop.set()
        racer.join(10)
        demoted = 0.0
        if not kill:
            # The old master stays a master, its clients connected, until
            # the Sentinels convert it to a replica (REPLICAOF + CLIENT KILL).
            import redis

            old = redis.Redis(port=int(killed), password=self.sentinel.env["PASSWORD"] or None)
            self.addCleanup(old.close)
            wait_until(lambda: old.role()[0] == b"slave", 60, "the old master to be demoted")
            demoted = time.monotonic() - started

        # After the failover: the client finds the new master, more tasks.
        after = [f"a-{i}" for i in range(100)]
        while True:
            try:
                self.client.redis.ping()
                break
            except Exception:
                self.assertLess(time.monotonic() - started, 60, "no failover within 60 s")
                time.sleep(0.2)
        failover = time.monotonic() - started
        if kill:
            self.sentinel.run("start", killed)  # the old master rejoins as a replica
        self.submit(after)

        wait_until(lambda: set(replicated + after) <= set(self.recorded()), 90, "every task to run")
        worker.assert_running()
        out, err = waiting.communicate(timeout=30)
        self.assertEqual(out.strip(), f'{slow} succeeded: "{slow}"', err)
        # The control channel answers on the new master.
        name = re.search(r"Worker (\S+) consuming", worker.log())
        assert name is not None
        ping = self.txmsg("control", name.group(1), "ping", "--timeout", "10")
        out, err = ping.communicate(timeout=30)
        self.assertEqual(ping.returncode, 0, out + err + worker.log()[-6000:])
        runs = self.recorded()
        lost_racing = sorted(set(racing) - set(runs), key=lambda t: int(t[2:]))
        expected = replicated + after + [t for t in racing if t not in lost_racing]
        duplicates = len(runs) - len(set(runs))
        self.assertEqual(set(runs) - set(in_doubt), set(expected))

        # Every result is readable from the store (on the new master).
        def statuses() -> dict[str, int]:
            pipe = self.client.redis.pipeline(transaction=False)
            for task_id in expected:
                pipe.hget("txmsg:{" + task_id + "}:result", "status")
            counts: dict[str, int] = {}
            for status in pipe.execute():
                key = status.decode() if status else "missing"
                counts[key] = counts.get(key, 0) + 1
            return counts

        wait_until(lambda: statuses() == {"succeeded": len(expected)}, 20, "every result")
        wait_until(
            lambda: self.client.redis.xlen(stream_key(self.queue)) == 0, 20, "the stream to empty"
        )
        self.assertLess(done_at_kill, len(replicated), "the kill came after the work was done")
        print(
            f"\nSentinel failover under a worker (master :{killed} "
            f"{'killed' if kill else 'demoted by SENTINEL FAILOVER'}): "
            f"{done_at_kill}/{len(replicated)} replicated tasks done at the kill; "
            f"redis-py back after {failover:.1f} s; "
            f"old master demoted after {demoted:.1f} s; {len(racing)} racing submissions "
            f"answered by the old master, {len(lost_racing)} lost {lost_racing[:5]}; "
            f"{len(expected)} tasks completed, {duplicates} duplicate run(s); "
            f"{len(set(in_doubt) & set(runs))}/{len(in_doubt)} submission(s) in doubt ran; "
            f"all results 'succeeded'"
        )
        worker.assert_clean_stop(worker.terminate())

    def test_unreplicated_submissions_lost(self) -> None:
        """
        The limit, shown on purpose: with the replica cut off, 50 tasks are
        added; the master answers every C{XADD} but C{WAIT 1} says no
        replica has them; the master dies, the replica is promoted without
        them: they are gone.  C{WAIT}'s answer is what tells a submitter.
        """
        with open(os.path.join(self.sentinel.dir, self.sentinel.env["REPLICA_PORT"] + ".pid")) as f:
            replica = int(f.read())
        self.client.declare(self.queue)
        self.assertEqual(int(self.client.redis.execute_command("WAIT", 1, 5000)), 1)
        # stopped, and its link cut: nothing written now reaches it
        os.kill(replica, signal.SIGSTOP)
        try:
            self.client.redis.execute_command("CLIENT", "KILL", "TYPE", "replica")
            ids = [f"u-{i}" for i in range(50)]
            self.submit(ids)
            self.assertEqual(int(self.client.redis.execute_command("WAIT", 1, 200)), 0)
            self.assertEqual(self.client.redis.xlen(stream_key(self.queue)), 50)
            self.sentinel.run("kill-master")
        finally:
            os.kill(replica, signal.SIGCONT)
        started = time.monotonic()
        while True:
            try:
                length = self.client.redis.xlen(stream_key(self.queue))
                break
            except Exception:
                self.assertLess(time.monotonic() - started, 60, "no failover within 60 s")
                time.sleep(0.2)
        self.assertEqual(length, 0)
        print(
            f"\n50 tasks answered by the master, WAIT 1 -> 0, master killed: "
            f"{50 - length} lost after {time.monotonic() - started:.1f} s of failover"
        )
