# Copyright (c) txmsg contributors. See LICENSE for details.
"""
C{benchmarks/worker.py --broker redis}: the worker on Redis Streams against
RQ (C{SimpleWorker} and its default forking C{Worker}), arq and Celery
(Redis broker, C{-P solo}), each one process on the same private
C{redis-server} (started here on a spare port, no persistence), in the
same run.

Two workloads per worker, no-op tasks:

  - drain: N tasks are queued first, then the worker starts; the rate is
    (N - 1) / (last completion - first completion), so start-up does not
    count;
  - end to end: the worker runs idle, then N tasks are queued; the rate is
    N / (last completion - first enqueue): enqueueing counts.

A completion is the result each framework writes (txmsg: the reply entry,
RQ: the finished-job registry, arq: the result key; Celery, which has no
result backend here: the queue and its unacked set empty).  Redis commands
per task come from C{INFO commandstats} over the timed window, less the
driver's own polling commands (commands run inside a Lua script count
too, as Redis counts them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "redis_peers")
BIN = os.path.dirname(sys.executable)
KINDS = ("txmsg", "rq-simple", "rq-fork", "arq", "celery")


def _available(kind):
    module = {"rq-simple": "rq", "rq-fork": "rq", "arq": "arq", "celery": "celery"}.get(kind)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    if kind == "celery":  # kombu's Redis transport needs redis-py >= 6.1 (arq: < 6)
        import redis

        return tuple(int(x) for x in redis.__version__.split(".")[:2]) >= (6, 1)
    return True


class Server:
    """A private redis-server (no persistence) on a spare port."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="txmsg-bench-redis-")
        self.url = "redis://127.0.0.1:{}/0".format(self.port)
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        self.redis = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.redis.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def commandstats(self):
        info = self.redis.info("commandstats")
        return {k[len("cmdstat_") :]: v["calls"] for k, v in info.items()}


class Peer:
    """One framework: enqueue, start its worker, count completions."""

    def __init__(self, kind, server, n):
        self.kind, self.server, self.n = kind, server, n
        self.r = server.redis
        self.queue = "bench" + uuid.uuid4().hex[:8]
        self.polls = {}
        self.out = tempfile.NamedTemporaryFile(prefix="txmsg-bench-", suffix=".log", delete=False)
        self.process = None

    def _poll(self, name, count=1):
        self.polls[name] = self.polls.get(name, 0) + count

    # -- enqueue

    def enqueue(self):
        getattr(self, "_enqueue_" + self.kind.split("-")[0])()

    def _enqueue_txmsg(self):
        stream = "txmsg:{" + self.queue + "}:stream"
        self.replies = "txmsg:{replies-" + self.queue + "}"
        for start in range(0, self.n, 500):
            p = self.r.pipeline(transaction=False)
            for i in range(start, min(self.n, start + 500)):
                tid = "{}-{}".format(self.queue, i)
                body = json.dumps({"task": "noop", "args": [], "kwargs": {}, "id": tid})
                p.xadd(stream, {"body": body, "content_type": "application/json",
                                "message_id": tid, "correlation_id": tid,
                                "reply_to": self.replies})  # fmt: skip
            p.execute()

    def _enqueue_rq(self):
        from rq import Queue

        q = Queue(self.queue, connection=self.r)
        import _bench_redis_tasks as t

        for start in range(0, self.n, 500):
            q.enqueue_many(
                [Queue.prepare_data(t.noop) for _ in range(start, min(self.n, start + 500))]
            )

    def _enqueue_arq(self):
        from arq import create_pool
        from arq.connections import RedisSettings

        async def go():
            pool = await create_pool(RedisSettings(port=self.server.port))
            for start in range(0, self.n, 20):
                await asyncio.gather(*[
                    pool.enqueue_job("noop", _job_id="{}-{}".format(self.queue, i),
                                     _queue_name=self.queue)
                    for i in range(start, min(self.n, start + 20))
                ])  # fmt: skip
            await pool.aclose()

        asyncio.run(go())

    def _enqueue_celery(self):
        import _bench_celery as c

        c.app.conf.broker_url = self.server.url
        with c.app.producer_or_acquire() as producer:
            for _ in range(self.n):
                c.noop.apply_async(queue=self.queue, producer=producer)

    # -- the worker

    def start(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, PEERS]))
        url = self.server.url
        if self.kind == "txmsg":
            argv = [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "txmsg-worker",
                    "--tasks", "examples.worker_tasks", "--queue", self.queue,
                    "--prefetch", "100", "--broker", url]  # fmt: skip
            ready = "Consuming {} (".format(self.queue)
        elif self.kind.startswith("rq"):
            argv = [os.path.join(BIN, "rq"), "worker", "--url", url, self.queue]
            if self.kind == "rq-simple":
                argv[2:2] = ["-w", "rq.worker.SimpleWorker"]
            ready = "Listening on"
        elif self.kind == "arq":
            env["BENCH_ARQ_PORT"], env["BENCH_ARQ_QUEUE"] = str(self.server.port), self.queue
            argv = [os.path.join(BIN, "arq"), "_bench_redis_tasks.ArqSettings"]
            ready = "Starting worker"
        else:
            env["BENCH_CELERY_URL"] = url
            argv = [os.path.join(BIN, "celery"), "-A", "_bench_celery", "worker", "-P", "solo",
                    "-Q", self.queue, "--without-heartbeat", "--without-mingle",
                    "--without-gossip", "-l", "info"]  # fmt: skip
            ready = "ready."
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while ready not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("{} worker did not start:\n{}".format(self.kind, self.log()))
            time.sleep(0.02)

    def cpu(self):
        """CPU seconds of the worker and its reaped children (Linux)."""
        with open("/proc/{}/stat".format(self.process.pid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def log(self):
        with open(self.out.name, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.unlink(self.out.name)

    # -- completions

    def done(self):
        if self.kind == "txmsg":
            self._poll("xlen")
            return int(self.r.xlen(self.replies))
        if self.kind.startswith("rq"):
            self._poll("zcard")
            return int(self.r.zcard("rq:finished:" + self.queue))
        if self.kind == "arq":
            self._poll("exists")
            keys = ["arq:result:{}-{}".format(self.queue, i) for i in range(self.n)]
            return int(self.r.exists(*keys))
        self._poll("llen")
        self._poll("hlen")
        left = int(self.r.llen(self.queue)) + int(self.r.hlen("unacked"))
        return self.n - left

    def wait_done(self, first_at=None):
        """Poll until all are done: (time of the first, time of the last)."""
        deadline = time.monotonic() + 600
        first = first_at
        while True:
            d = self.done()
            now = time.perf_counter()
            if d >= 1 and first is None:
                first = now
            if d >= self.n:
                return first, now
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("{}: {} of {} done:\n{}".format(self.kind, d, self.n, self.log()))
            time.sleep(0.005)


def one_run(server, kind, n, mode):
    """
    One worker over n tasks: (tasks/s, Redis commands per task, evalsha per
    task, tasks per CPU second of the worker).
    """
    peer = Peer(kind, server, n)
    try:
        if mode == "drain":
            peer.enqueue()
            before = server.commandstats()
            peer.start()
            cpu = peer.cpu()
            first, last = peer.wait_done()
            cpu = peer.cpu() - cpu
            rate = (n - 1) / (last - first)
        else:
            peer.start()
            before = server.commandstats()
            cpu = peer.cpu()
            started = time.perf_counter()
            peer.enqueue()
            _, last = peer.wait_done(first_at=started)
            cpu = peer.cpu() - cpu
            rate = n / (last - started)
        after = server.commandstats()
    finally:
        peer.stop()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    for name, count in peer.polls.items():
        delta[name] = delta.get(name, 0) - count
    delta["info"] = 0
    if mode != "drain":
        delta = None  # enqueueing is in the window
    per_task = None if delta is None else sum(v for v in delta.values() if v > 0) / n
    scripts = None if delta is None else (delta.get("evalsha", 0) + delta.get("eval", 0)) / n
    server.redis.flushdb()
    return rate, per_task, scripts, n / max(cpu, 1e-3)


def main(args):
    sys.path.insert(0, PEERS)
    kinds = [k for k in KINDS if _available(k)]
    missing = [k for k in KINDS if k not in kinds]
    server = Server()
    results = {(m, k): [] for m in ("drain", "e2e") for k in kinds}
    commands = {k: [] for k in kinds}
    per_cpu = {(m, k): [] for m in ("drain", "e2e") for k in kinds}
    scripts = {k: [] for k in kinds}
    n = args.tasks
    try:
        for r in range(args.rounds):
            for mode in ("drain", "e2e"):
                for kind in kinds:
                    count = n if kind not in ("rq-fork",) else max(100, n // 10)
                    sys.stderr.write("round {}/{}: {} {} ({} tasks)... ".format(
                        r + 1, args.rounds, kind, mode, count))  # fmt: skip
                    rate, per_task, evalsha, tasks_per_cpu = one_run(server, kind, count, mode)
                    per_cpu[(mode, kind)].append(tasks_per_cpu)
                    sys.stderr.write("{:.0f} tasks/s\n".format(rate))
                    results[(mode, kind)].append(rate)
                    if per_task is not None:
                        commands[kind].append(per_task)
                        scripts[kind].append(evalsha)
    finally:
        server.stop()
    med = {key: statistics.median(v) for key, v in results.items()}

    def ratio(mode, kind):
        # the median of same-round ratios (the rounds interleave the workers)
        return statistics.median(
            t / p for t, p in zip(results[(mode, "txmsg")], results[(mode, kind)], strict=True)
        )

    print()
    print("Worker on Redis: no-op tasks, one process each, {} tasks x {} rounds "
          "(median tasks/s; rq-fork runs {} tasks)".format(n, args.rounds, max(100, n // 10)))  # fmt: skip
    print("{:<12} {:>8} {:>8} {:>10} {:>11} {:>12} {:>11}".format(
        "worker", "drain", "end2end", "tx/x drain", "tx/x e2e", "tasks/cpu-s", "cmds/task"))  # fmt: skip
    for kind in kinds:
        print("{:<12} {:>8.0f} {:>8.0f} {:>10.2f} {:>11.2f} {:>12.0f} {:>11.2f}".format(
            kind, med[("drain", kind)], med[("e2e", kind)], ratio("drain", kind),
            ratio("e2e", kind), statistics.median(per_cpu[("drain", kind)]),
            statistics.median(commands[kind])))  # fmt: skip
    print(
        "(tasks/cpu-s: tasks per CPU second of the worker process and its children, "
        "drain; cmds/task: Redis commands per task, drain)"
    )
    print("(ratios: the median of the rounds' own ratios)")
    print("(txmsg: {:.2f} Lua script calls per task; commands count those run inside "
          "scripts; Celery has no result backend here)".format(statistics.median(scripts["txmsg"])))  # fmt: skip
    if missing:
        print("(not installed or not installable beside the others, not measured: {}; "
              "Celery's Redis transport needs redis-py >= 6.1, arq needs < 6)".format(
                  ", ".join(missing)))  # fmt: skip
