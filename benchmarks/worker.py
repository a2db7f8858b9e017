#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Task worker throughput and CPU: C{twistd -n txmsg-worker} against its peers
and against the broker's own ceilings, in the same run, against the RabbitMQ
at C{$TXMSG_AMQP_URL} (default: local guest).

Workloads (persistent no-op v1 tasks, C{{"task": "noop", ...}}):

  - C{reply pf 1} / C{2} / C{100}: each task has C{reply_to}; the worker
    runs it, publishes the reply, acks.  Progress = replies received by this
    process.
  - C{no reply pf 100}: no C{reply_to}; the queue is pre-filled and drained.
    Progress = tasks gone from the queue (a passive declare every 10 ms).

Workers (each its own process; C{benchmarks/_worker_peers.py}):

  - C{txmsg}: C{twistd -n txmsg-worker --tasks examples.worker_tasks}, as
    it runs by default: its consumer moves to a transactional channel once
    most tasks reply to a queue (each reply committed with its ack: one
    round trip instead of two), and stays plain otherwise;
  - C{txmsg-plain}: the same with C{--no-transactions}: each reply
    confirmed before its ack (the reply rows);
  - C{txmsg-tx}: the same with C{--transactions} (the no-reply row: what
    transactions cost without replies);
  - C{blocking}: pika C{BlockingConnection}, replies unconfirmed;
  - C{blk+conf}: the same with confirmed replies (txmsg's guarantee);
  - C{ceiling}: pika's Twisted adapter with no worker logic: consume + ack,
    or (with replies) consume + confirmed publish + ack after the confirm;
  - C{ceil+tx}: the same loop with replies, the publish and the ack in one
    transaction per reactor turn (txmsg's mechanism, without the worker);
  - C{celery}, C{dramatiq}: optional (C{requirements-bench.txt}), no-reply
    only, skipped with a message when not installed; settings printed.

Each run: fill a fresh queue (untimed), start the worker, sample (time,
tasks done, CPU ticks of the worker's process tree from C{/proc/PID/stat})
every 10-20 ms; the rate and the CPU per task are measured between 10% and
90% of the tasks, so start-up and the tail do not count.  The queue must be
empty afterwards (everything acked).  Rounds interleave the workers; medians
of the rounds are printed with same-run ratios.

The result-store rows (C{benchmarks/_worker_results.py}: results in Redis,
txmsg against Celery and Dramatiq with their Redis result backends) follow
unless C{--no-results}; C{--results-only} runs only them.

Usage: python benchmarks/worker.py [--quick] [--tasks N] [--rounds R]
           [--only txmsg,ceiling,...] [--workloads "reply pf 1,..."]
           [--profile flame.svg] [--broker redis]

With C{--broker redis}: the worker on Redis Streams against RQ, arq and
Celery instead (C{benchmarks/_worker_redis.py}).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Not this directory: benchmarks/amqp.py would shadow the amqp package Celery uses.
sys.path[:] = [ROOT] + [
    p for p in sys.path[1:] if os.path.abspath(p or ".") != os.path.join(ROOT, "benchmarks")
]

URL = os.environ.get("TXMSG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PYTHON = sys.executable
BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")
TICKS = os.sysconf("SC_CLK_TCK")

#: (label, prefetch, with replies, workers)
WORKLOADS = (
    ("reply pf 1", 1, True, ("txmsg", "txmsg-plain", "blocking", "blk+conf")),
    ("reply pf 2", 2, True, ("txmsg", "txmsg-plain", "blk+conf")),
    (
        "reply pf 100",
        100,
        True,
        ("txmsg", "txmsg-plain", "blocking", "blk+conf", "ceiling", "ceil+tx"),
    ),
    (
        "no reply pf 100",
        100,
        False,
        ("txmsg", "txmsg-tx", "blocking", "ceiling", "celery", "dramatiq"),
    ),
)
PEERS = ("celery", "dramatiq")
#: txmsg's worker with its consumer's mode fixed, beside the default (which
#: chooses by itself): the flag each kind runs with.
FIXED_MODES = {"txmsg-tx": "--transactions", "txmsg-plain": "--no-transactions"}


# -- CPU of a process tree ---------------------------------------------------------


def tree_cpu_ticks(pid):
    """
    utime + stime (clock ticks) of C{pid} and its live descendants, from
    C{/proc/*/stat} (Dramatiq runs its workers in child processes).
    """
    parents, ticks = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/{}/stat".format(name)) as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(name)] = int(fields[1])
        ticks[int(name)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo.extend(c for c, parent in parents.items() if parent == p)
    return total


# -- worker processes --------------------------------------------------------------


class WorkerProcess:
    """
    One worker subprocess, its output in a file.
    """

    def __init__(self, kind, queue, prefetch):
        from benchmarks._worker_peers import PEER_SETTINGS  # noqa: F401 (import check)

        self.kind = kind
        self.out = tempfile.NamedTemporaryFile(
            prefix="txmsg-bench-worker-", suffix=".log", delete=False
        )
        env = dict(
            os.environ,
            PYTHONPATH=ROOT,
            TXMSG_AMQP_URL=URL,
            TXMSG_BENCH_QUEUE=queue,
            TXMSG_BENCH_PREFETCH=str(prefetch),
            dramatiq_queue_prefetch=str(prefetch),
        )
        me = [PYTHON, "-u", os.path.abspath(__file__)]  # runs a peer (see __main__)
        if kind == "txmsg" or kind in FIXED_MODES:
            argv = [TWISTD, "-n", "--pidfile=", "txmsg-worker", "--tasks", "examples.worker_tasks"]
            argv += ["--queue", queue, "--prefetch", str(prefetch), "--amqp", URL]
            argv += [FIXED_MODES[kind]] if kind in FIXED_MODES else []
        elif kind in ("blocking", "blk+conf"):
            argv = me + ["--blocking-worker", queue, str(prefetch)]
            argv += ["--confirms"] if kind == "blk+conf" else []
        elif kind in ("ceiling", "ceil+tx"):
            argv = me + ["--raw-worker", queue, str(prefetch)]
            argv += ["--tx"] if kind == "ceil+tx" else []
        elif kind == "celery":
            argv = [
                os.path.join(BIN, "celery"),
                "-A",
                "benchmarks._worker_peers:celery_app",
                "worker",
            ]
            argv += ["-P", "solo", "-c", "1", "-Q", queue, "--prefetch-multiplier", str(prefetch)]
            argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        elif kind == "dramatiq":
            argv = [os.path.join(BIN, "dramatiq"), "benchmarks._worker_peers", "-p", "1", "-t", "4"]
            argv += ["-Q", queue]
        else:
            raise ValueError(kind)
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log(self):
        with open(self.out.name, errors="replace") as f:
            return f.read()

    def check(self):
        if self.process.poll() is not None:
            raise SystemExit("{} worker exited:\n{}".format(self.kind, self.log()))

    def cpu(self):
        return tree_cpu_ticks(self.process.pid)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.unlink(self.out.name)


async def sleep(reactor, seconds):
    from twisted.internet.task import deferLater

    await deferLater(reactor, seconds)


async def fill(client, kind, queue, replies, n):
    """
    Put n tasks on queue (with reply_to replies, when given), confirmed.
    """
    from twisted.internet.defer import DeferredSemaphore, gatherResults
    from twisted.internet.threads import deferToThread

    if kind in PEERS:
        argv = [PYTHON, os.path.abspath(__file__), "--fill-peer", kind, str(n)]
        env = dict(os.environ, TXMSG_BENCH_QUEUE=queue, TXMSG_AMQP_URL=URL)
        await deferToThread(subprocess.run, argv, env=env, cwd=ROOT, check=True)
        return
    window = DeferredSemaphore(200)

    def submit(i):
        task_id = "{}-{}".format(queue, i)
        body = json.dumps({"task": "noop", "args": [], "kwargs": {}, "id": task_id})
        extra = {"reply_to": replies, "correlation_id": task_id} if replies else {}
        return client.publish(
            "", queue, body, content_type="application/json", message_id=task_id, **extra
        )

    await gatherResults([window.run(submit, i) for i in range(n)])


def window(samples, n):
    """
    (tasks/s, CPU ms per task) from about 10% to 90% of n tasks done, from
    (time, done, cpu ticks) samples.
    """
    # The last sample at or below 10% and the first at or above 90%: a slow
    # poll (a busy machine) widens the window instead of emptying it.
    low = [s for s in samples if s[1] <= n * 0.1][-1]
    high = next(s for s in samples if s[1] >= n * 0.9)
    if high[1] <= low[1] or high[0] <= low[0]:
        raise SystemExit("too few samples between 10% and 90%: use more --tasks")
    tasks = high[1] - low[1]
    return tasks / (high[0] - low[0]), (high[2] - low[2]) * 1000.0 / TICKS / tasks


async def one_run(reactor, client, kind, prefetch, with_replies, n, profile=None):
    """
    Fill a queue with n tasks, run one worker over it: (tasks/s, CPU ms/task).
    """
    from twisted.internet.threads import deferToThread

    from txmsg.amqp import Queue

    queue = "txmsg-bench-worker-" + uuid.uuid4().hex[:10]
    replies = "txmsg-bench-replies-" + uuid.uuid4().hex[:10] if with_replies else None
    if kind == "dramatiq":  # it declares its queues itself (dead letters, delays)
        queue = queue.replace("-", "_")
    else:
        await client.declare(Queue(queue, durable=True))
    if replies:
        await client.declare(Queue(replies, durable=False))
    await fill(client, kind, queue, replies, n)
    channel = await client.open_channel()
    arrivals = []
    consumer = None
    if replies:
        consumer = client.consume(replies, lambda d: arrivals.append(None), prefetch=1000)
        await consumer.when_consuming()

        async def done():
            return len(arrivals)

    else:

        async def done():
            frame = await channel.queue_declare(queue, passive=True)
            return n - frame.method.message_count

    worker = WorkerProcess(kind, queue, prefetch)
    spy = None
    samples = []
    try:
        deadline = time.monotonic() + 60
        while True:
            count = await done()
            samples.append((time.perf_counter(), count, worker.cpu()))
            if profile and spy is None and count:  # start-up excluded
                spy = subprocess.Popen(
                    [os.path.join(BIN, "py-spy"), "record", "--rate", "500", "--nonblocking"]
                    + ["--pid", str(worker.process.pid), "-o", profile]
                    # collapsed stacks (one line per stack) for a .txt file
                    + (["--format", "raw"] if profile.endswith(".txt") else []),
                    stdout=subprocess.DEVNULL,
                )
            if count >= n:
                if not replies:
                    # The queue is empty but up to a prefetch window may still be
                    # unacked: give the worker time to finish it before stopping.
                    await sleep(reactor, 1.0)
                break
            if count == 0 and time.monotonic() > deadline:
                raise SystemExit("{} worker did not start:\n{}".format(kind, worker.log()))
            if time.monotonic() > deadline + 300:
                raise SystemExit("only {} of {} done:\n{}".format(count, n, worker.log()))
            worker.check()
            await sleep(reactor, 0.02 if replies else 0.01)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await deferToThread(spy.wait)
        await deferToThread(worker.stop)
        if consumer is not None:
            await consumer.stop()
        channel.close()
    rate, cpu = window(samples, n)
    left = await deferToThread(_count_and_delete, queue, replies)
    if left:
        raise SystemExit("{} worker left {} task(s) in the queue".format(kind, left))
    return rate, cpu


def _count_and_delete(queue, replies):
    import pika

    from txmsg.worker.retry import dead_letter_queue_name

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    left = channel.queue_declare(queue, passive=True).method.message_count
    names = [queue, dead_letter_queue_name(queue), queue + ".DQ", queue + ".XQ"]
    names += [replies] if replies else []
    for name in names:
        channel.queue_delete(name)
    connection.close()
    return left


def available(kinds):
    from benchmarks._worker_peers import peer_version

    missing = [k for k in kinds if k in PEERS and peer_version(k) is None]
    for kind in missing:
        sys.stderr.write(
            "{} is not installed: not measured (pip install -r requirements-bench.txt)\n".format(
                kind
            )
        )
    return [k for k in kinds if k not in missing]


async def main(reactor, args):
    if not args.results_only:
        await peer_rows(reactor, args)
    if not args.no_results and not args.profile:
        await result_rows(args)


async def result_rows(args):
    """
    The rows with results stored in Redis (benchmarks/_worker_results.py),
    then the delayed-task rows (benchmarks/_worker_delayed.py).
    """
    from twisted.internet.threads import deferToThread

    from benchmarks._worker_results import results_rows

    n = 300 if args.quick else 2000
    for line in await deferToThread(results_rows, n, args.rounds):
        print(line)
    from benchmarks._worker_delayed import delayed_rows

    n = 100 if args.quick else 500
    for line in await deferToThread(delayed_rows, n, args.rounds):
        print(line)


async def peer_rows(reactor, args):
    from benchmarks._worker_peers import PEER_SETTINGS, peer_version
    from txmsg.amqp import AMQPConnection

    client = AMQPConnection(URL, reactor=reactor, connection_name="txmsg-bench-worker-client")
    client.startService()
    workloads = [
        (label, pf, replies, available([k for k in kinds if not args.only or k in args.only]))
        for label, pf, replies, kinds in WORKLOADS
        if not args.workloads or label in args.workloads
    ]
    results = {(label, k): [] for label, _, _, kinds in workloads for k in kinds}
    try:
        if args.profile:
            label, prefetch, replies, _ = workloads[-1] if args.workloads else WORKLOADS[-1]
            sys.stderr.write("profiling txmsg, {}, {} tasks...\n".format(label, args.tasks))
            await one_run(reactor, client, "txmsg", prefetch, replies, args.tasks, args.profile)
            sys.stderr.write("flame graph written to {}\n".format(args.profile))
            return
        for r in range(args.rounds):
            for label, prefetch, replies, kinds in workloads:
                n = args.tasks if prefetch > 2 else max(200, args.tasks // 5)
                for kind in kinds:
                    sys.stderr.write(
                        "round {}/{}: {} {} ({} tasks)... ".format(
                            r + 1, args.rounds, kind, label, n
                        )
                    )
                    rate, cpu = await one_run(reactor, client, kind, prefetch, replies, n)
                    sys.stderr.write("{:.0f} tasks/s, {:.3f} ms CPU/task\n".format(rate, cpu))
                    results[label, kind].append((rate, cpu))
    finally:
        await client.stopService()
    report(args, workloads, results, PEER_SETTINGS, peer_version)


def report(args, workloads, results, settings, peer_version):
    def med(label, kind, i):
        runs = results.get((label, kind))
        return statistics.median(r[i] for r in runs) if runs else None

    print()
    print(
        "Worker benchmark: no-op tasks, {} tasks at prefetch 100 ({} at prefetch 1-2) x {} "
        "rounds, medians; {} CPUs, load average {:.1f} at the end".format(
            args.tasks,
            max(200, args.tasks // 5),
            args.rounds,
            os.cpu_count(),
            os.getloadavg()[0],
        )
    )
    print(
        "{:<17} {:<11} {:>9} {:>12} {:>10} {:>14} {:>12}".format(
            "workload", "worker", "tasks/s", "CPU ms/task", "txmsg is", "per round", "fixed is"
        )
    )

    def ratio(mine, kind, rate):
        return "" if kind.startswith("txmsg") or mine is None else "{:.2f}x".format(mine / rate)

    def per_round(label, kind):
        # txmsg's rate over this worker's, round by round (each round runs
        # them minutes apart at most): the spread of the same-run ratio.
        if kind.startswith("txmsg"):
            return ""
        pairs = zip(results.get((label, "txmsg"), ()), results[label, kind], strict=False)
        ratios = sorted(mine[0] / theirs[0] for mine, theirs in pairs)
        if len(ratios) < 2:
            return ""
        return "{:.2f}-{:.2f}x".format(ratios[0], ratios[-1])

    for label, _, _, kinds in workloads:
        default = med(label, "txmsg", 0)
        fixed = next((med(label, k, 0) for k in FIXED_MODES if k in kinds), None)
        for kind in kinds:
            rate, cpu = med(label, kind, 0), med(label, kind, 1)
            print(
                "{:<17} {:<11} {:>9.0f} {:>12.3f} {:>10} {:>14} {:>12}".format(
                    label,
                    kind,
                    rate,
                    cpu,
                    ratio(default, kind, rate),
                    per_round(label, kind),
                    ratio(fixed, kind, rate),
                )
            )
    print(
        "(txmsg is: the default worker's tasks/s / this worker's, same run, medians; per round:"
        " the lowest and highest of that ratio per round; fixed is: the same for the worker with"
        " its mode fixed, txmsg-plain = --no-transactions, txmsg-tx = --transactions)"
    )
    for kind in PEERS:
        version = peer_version(kind)
        if version is not None:
            print("{}: {}".format(kind, settings[kind].format(version=version, prefetch=100)))


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round, few tasks")
    ap.add_argument("--tasks", type=int, default=None, help="tasks per run at prefetch 100")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--only", type=lambda s: s.split(","), default=None, help="workers to run")
    ap.add_argument(
        "--workloads",
        type=lambda s: s.split(","),
        default=None,
        help='workloads to run, e.g. "no reply pf 100,reply pf 1"',
    )
    ap.add_argument(
        "--profile",
        metavar="SVG",
        help="only record a py-spy flame graph of txmsg's worker (no reply, prefetch 100, "
        "or the last workload --workloads names)",
    )
    ap.add_argument("--blocking-worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--raw-worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--tx", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--fill-peer", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--confirms", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-results", action="store_true", help="skip the result-store rows")
    ap.add_argument("--results-only", action="store_true", help="only the result-store rows")
    ap.add_argument(
        "--broker", choices=("amqp", "redis"), default="amqp", help="amqp (default) or redis"
    )
    args = ap.parse_args()
    if args.tasks is None:
        args.tasks = 1000 if args.quick else 10000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


if __name__ == "__main__":
    ARGS = parse()
    if ARGS.broker == "redis":
        from benchmarks import _worker_redis

        _worker_redis.main(ARGS)
    elif ARGS.blocking_worker:
        from benchmarks._worker_peers import blocking_worker

        blocking_worker(ARGS.blocking_worker[0], int(ARGS.blocking_worker[1]), ARGS.confirms)
    elif ARGS.raw_worker:
        from benchmarks._worker_peers import raw_worker

        raw_worker(ARGS.raw_worker[0], int(ARGS.raw_worker[1]), publish=True, tx=ARGS.tx)
    elif ARGS.fill_peer:
        from benchmarks._worker_peers import fill_peer

        fill_peer(ARGS.fill_peer[0], int(ARGS.fill_peer[1]))
    else:
        from twisted.internet import defer, task

        task.react(lambda reactor: defer.ensureDeferred(main(reactor, ARGS)))
