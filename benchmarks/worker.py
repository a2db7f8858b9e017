#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Task worker throughput: C{twistd -n txmsg-worker} vs a minimal pika
C{BlockingConnection} worker, in the same run, against the RabbitMQ at
C{$TXMSG_AMQP_URL} (default: local guest).

Each run, for one worker kind and one prefetch:

  1. submit N no-op v1 tasks (C{{"task": "noop", ...}}, persistent, with
     C{reply_to}/C{correlation_id}) to a fresh durable queue with publisher
     confirms (txmsg's publisher, 200 unconfirmed at most);
  2. start the worker process; it consumes, runs each task, publishes the
     v1 reply to C{reply_to}, then acks;
  3. the rate is (N - 1) / (time of the last reply - time of the first
     reply) as observed by the submitting process, so worker start-up does
     not count; afterwards the worker is stopped and the queue must be empty
     (everything acked).

The blocking worker does what txmsg's worker does per task (parse the JSON
envelope, look the task up, call it, encode and publish the reply, ack), but
publishes its replies without confirms (the seeds' style), while txmsg's
worker waits for the reply's confirm before acking (at-least-once for the
reply too); "Blk+conf" is the blocking worker with confirms on its replies,
the same guarantee as txmsg's.

Rounds are interleaved (txmsg, blocking, txmsg, ...) and the median is
reported, with the ratio txmsg / blocking.

Usage: python benchmarks/worker.py [--quick] [--tasks N] [--rounds R] [--broker redis]

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

import pika

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL = os.environ.get("TXMSG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PYTHON = sys.executable
#: txmsg's worker; the blocking worker; the blocking worker confirming its replies.
KINDS = ("txmsg", "blocking", "blocking+confirms")
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


# -- the minimal blocking worker (run as a subprocess) --------------------------


def blocking_worker(queue, prefetch, confirms=False):
    """
    Consume v1 tasks from C{queue} with pika's BlockingConnection: run, reply,
    ack.  Stops on SIGTERM.  With C{confirms}, each reply waits for its
    publisher confirm before the ack (txmsg's worker's guarantee).
    """
    tasks = {"noop": lambda: None}
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    if confirms:
        channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    channel.basic_qos(prefetch_count=prefetch)

    def on_message(ch, method, props, body):
        task = json.loads(body)
        result = tasks[task["task"]](*task.get("args", []), **task.get("kwargs", {}))
        if props.reply_to:
            reply = json.dumps({"id": task["id"], "status": "ok", "result": result})
            ch.basic_publish(
                "",
                props.reply_to,
                reply,
                pika.BasicProperties(
                    correlation_id=props.correlation_id, content_type="application/json"
                ),
            )
        ch.basic_ack(method.delivery_tag)

    def stop(signum, frame):
        channel.stop_consuming()

    signal.signal(signal.SIGTERM, stop)
    channel.basic_consume(queue, on_message)
    print("blocking worker consuming", flush=True)
    channel.start_consuming()
    connection.close()


# -- the benchmark driver --------------------------------------------------------


class WorkerProcess:
    """
    One worker subprocess (txmsg or blocking), its output in a file.
    """

    def __init__(self, kind, queue, prefetch):
        self.kind = kind
        self.out = tempfile.NamedTemporaryFile(
            prefix="txmsg-bench-worker-", suffix=".log", delete=False
        )
        env = dict(os.environ, PYTHONPATH=ROOT, TXMSG_AMQP_URL=URL)
        if kind == "txmsg":
            argv = [
                TWISTD,
                "-n",
                "--pidfile=",
                "txmsg-worker",
                "--tasks",
                "examples.worker_tasks",
                "--queue",
                queue,
                "--prefetch",
                str(prefetch),
                "--amqp",
                URL,
            ]
            self.ready = "Consuming {} (".format(queue)
        else:
            argv = [
                PYTHON,
                "-u",
                os.path.abspath(__file__),
                "--blocking-worker",
                queue,
                str(prefetch),
            ]
            if kind == "blocking+confirms":
                argv.append("--confirms")
            self.ready = "blocking worker consuming"
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

    def is_ready(self):
        if self.process.poll() is not None:
            raise SystemExit("{} worker exited:\n{}".format(self.kind, self.log()))
        return self.ready in self.log()

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


async def one_run(reactor, client, kind, prefetch, n):
    """
    Submit n tasks, run one worker over them: (tasks/s, submit rate).
    """
    from twisted.internet.defer import DeferredSemaphore, gatherResults
    from twisted.internet.threads import deferToThread

    from txmsg.amqp import Queue

    queue = "txmsg-bench-worker-" + uuid.uuid4().hex[:10]
    replies = "txmsg-bench-replies-" + uuid.uuid4().hex[:10]
    await client.declare(Queue(queue, durable=True), Queue(replies, durable=False))
    window = DeferredSemaphore(200)
    started = time.perf_counter()

    def submit(i):
        task_id = "{}-{}".format(queue, i)
        body = json.dumps({"task": "noop", "args": [], "kwargs": {}, "id": task_id})
        return client.publish(
            "",
            queue,
            body,
            content_type="application/json",
            message_id=task_id,
            correlation_id=task_id,
            reply_to=replies,
        )

    await gatherResults([window.run(submit, i) for i in range(n)])
    submit_rate = n / (time.perf_counter() - started)

    arrivals = []
    consumer = client.consume(
        replies, lambda d: arrivals.append(time.perf_counter()), prefetch=1000
    )
    await consumer.when_consuming()
    worker = WorkerProcess(kind, queue, prefetch)
    try:
        deadline = time.monotonic() + 30
        while not worker.is_ready():
            if time.monotonic() > deadline:
                raise SystemExit("{} worker not ready:\n{}".format(kind, worker.log()))
            await sleep(reactor, 0.05)
        deadline = time.monotonic() + 300
        while len(arrivals) < n:
            if time.monotonic() > deadline:
                raise SystemExit(
                    "only {} of {} replies:\n{}".format(len(arrivals), n, worker.log())
                )
            worker.is_ready()
            await sleep(reactor, 0.02)
    finally:
        await deferToThread(worker.stop)
        await consumer.stop()
    rate = (n - 1) / (arrivals[-1] - arrivals[0])
    left = await deferToThread(_count_and_delete, queue, replies)
    if left:
        raise SystemExit("{} worker left {} task(s) in the queue".format(kind, left))
    return rate, submit_rate


def _count_and_delete(queue, replies):
    from txmsg.worker.retry import dead_letter_queue_name

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    left = channel.queue_declare(queue, passive=True).method.message_count
    names = [queue, dead_letter_queue_name(queue), replies]
    for name in names:
        channel.queue_delete(name)
    connection.close()
    return left


async def main(reactor, args):
    if not args.results_only:
        await peer_rows(reactor, args)
    if not args.no_results:
        await result_rows(args)


async def result_rows(args):
    """The rows with results stored in Redis (benchmarks/_worker_results.py)."""
    from twisted.internet.threads import deferToThread

    from benchmarks._worker_results import results_rows

    n = 300 if args.quick else 2000
    for line in await deferToThread(results_rows, n, args.rounds):
        print(line)


async def peer_rows(reactor, args):
    from txmsg.amqp import AMQPConnection

    client = AMQPConnection(URL, reactor=reactor, connection_name="txmsg-bench-worker-client")
    client.startService()
    results = {p: {k: [] for k in KINDS} for p in (1, 100)}
    submits = []
    try:
        for r in range(args.rounds):
            for prefetch in (1, 100):
                n = args.tasks if prefetch > 1 else max(200, args.tasks // 4)
                for kind in KINDS:
                    sys.stderr.write(
                        "round {}/{}: {} prefetch {} ({} tasks)... ".format(
                            r + 1, args.rounds, kind, prefetch, n
                        )
                    )
                    rate, submit_rate = await one_run(reactor, client, kind, prefetch, n)
                    sys.stderr.write("{:.0f} tasks/s\n".format(rate))
                    results[prefetch][kind].append(rate)
                    submits.append(submit_rate)
    finally:
        await client.stopService()
    print()
    print(
        "Worker benchmark: no-op v1 tasks with replies, {} tasks x {} rounds (median tasks/s), {}".format(
            args.tasks, args.rounds, "quick" if args.quick else "full"
        )
    )
    print(
        "{:<30} {:>8} {:>9} {:>10} {:>7} {:>8}".format(
            "workload", "txmsg", "Blocking", "Blk+conf", "tx/blk", "tx/b+c"
        )
    )
    for prefetch in (1, 100):
        t, b, c = (statistics.median(results[prefetch][k]) for k in KINDS)
        print(
            "{:<30} {:>8.0f} {:>9.0f} {:>10.0f} {:>7.2f} {:>8.2f}".format(
                "submit->run->reply->ack pf {}".format(prefetch), t, b, c, t / b, t / c
            )
        )
    print("(tx/blk: vs the blocking worker without reply confirms; tx/b+c: with them)")
    print(
        "(submitting with confirms ran at a median {:.0f} tasks/s, untimed; Celery/Dramatiq: "
        "not installed, not measured)".format(statistics.median(submits))
    )


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few-second smoke run")
    ap.add_argument("--tasks", type=int, default=None, help="tasks per run at prefetch 100")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument(
        "--blocking-worker", nargs=2, metavar=("QUEUE", "PREFETCH"), help=argparse.SUPPRESS
    )
    ap.add_argument("--confirms", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-results", action="store_true", help="skip the result-store rows")
    ap.add_argument("--results-only", action="store_true", help="only the result-store rows")
    ap.add_argument(
        "--broker", choices=("amqp", "redis"), default="amqp", help="amqp (default) or redis"
    )
    args = ap.parse_args()
    if args.tasks is None:
        args.tasks = 400 if args.quick else 3000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    ARGS = parse()
    if ARGS.broker == "redis":
        import _worker_redis

        # benchmarks/amqp.py would shadow the amqp package Celery imports.
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
        _worker_redis.main(ARGS)
    elif ARGS.blocking_worker:
        blocking_worker(ARGS.blocking_worker[0], int(ARGS.blocking_worker[1]), ARGS.confirms)
    else:
        from twisted.internet import defer, task

        task.react(lambda reactor: defer.ensureDeferred(main(reactor, ARGS)))
