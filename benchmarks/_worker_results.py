# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The result rows of C{benchmarks/worker.py}: no-op tasks whose results are
stored in Redis, one worker process each, in the same run:

  - txmsg: C{twistd -n txmsg-worker --results redis://...} (prefetch 100);
  - Celery (when installed): C{celery worker --pool solo} with its Redis
    result backend, RabbitMQ broker, default settings (prefetch multiplier
    4, acks before the task runs);
  - Dramatiq (when installed): C{dramatiq --processes 1} (8 threads, its
    default) with the Results middleware on Redis, RabbitMQ broker.

For each: N tasks are queued first (untimed), then the worker is started;
the driver watches Redis for the stored results and times from the result
of task N/10 (so start-up does not count) to the moment all N results are
stored.  Rounds are interleaved; medians and the ratios txmsg / peer are
printed.  Missing peers are skipped with a message.
"""

import importlib.util
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
AMQP_URL = os.environ.get("TXMSG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS_URL = os.environ.get("TXMSG_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = os.path.dirname(sys.executable)


def _installed(name):
    return importlib.util.find_spec(name) is not None


class _Kind:
    """One worker kind: how to queue tasks, start the worker, see a result."""

    name = ""

    def __init__(self, redis):
        self.redis = redis

    def available(self):
        return True

    def fill(self, queue, n):
        raise NotImplementedError

    def argv(self, queue):
        raise NotImplementedError

    def keys_done(self, keys):
        """How many of C{keys} have a stored result (one pipelined round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.exists(key)
        return sum(pipe.execute())

    def cleanup(self, queue):
        _delete_queues([queue])


class _Txmsg(_Kind):
    name = "txmsg"

    def fill(self, queue, n):
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(queue, durable=True)
        ids = ["{}-{}".format(queue, i) for i in range(n)]
        for task_id in ids:
            body = json.dumps({"task": "noop", "args": [], "kwargs": {}, "id": task_id})
            channel.basic_publish(
                "",
                queue,
                body,
                pika.BasicProperties(
                    content_type="application/json", delivery_mode=2, message_id=task_id
                ),
            )
        connection.close()
        return ["txmsg:{" + i + "}:result" for i in ids]

    def keys_done(self, keys):
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "status")
        return sum(1 for s in pipe.execute() if s == b"succeeded")

    def argv(self, queue):
        return [
            os.path.join(BIN, "twistd"),
            "-n",
            "--pidfile=",
            "txmsg-worker",
            "--tasks",
            "examples.worker_tasks",
            "--queue",
            queue,
            "--prefetch",
            "100",
            "--amqp",
            AMQP_URL,
            "--results",
            REDIS_URL,
        ]

    def cleanup(self, queue):
        from txmsg.worker.retry import RetryPolicy, dead_letter_queue_name, retry_queue_name

        steps = [retry_queue_name(queue, s) for s in RetryPolicy().steps()]
        _delete_queues([queue, dead_letter_queue_name(queue)] + steps)


class _Celery(_Kind):
    name = "Celery"
    pool = "solo"

    def available(self):
        return _installed("celery")

    def fill(self, queue, n):
        # benchmarks/amqp.py (run as a script, its folder is on the path)
        # would shadow the py-amqp package Celery imports.
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
        from benchmarks._celery_results_app import app

        ids = ["{}-{}".format(queue, i) for i in range(n)]
        with app.producer_pool.acquire(block=True) as producer:
            for task_id in ids:
                app.send_task("noop", queue=queue, task_id=task_id, producer=producer)
        return ["celery-task-meta-" + i for i in ids]

    def argv(self, queue):
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks._celery_results_app",
            "worker",
            "--pool",
            self.pool,
            "--concurrency",
            "1",
            "-Q",
            queue,
            "--loglevel",
            "WARNING",
        ]


class _CeleryThreads(_Celery):
    # The solo pool stalls for 0.1-10 s at a time here (its event loop waits
    # on a timer while prefetched tasks are ready); one pool thread does not.
    name = "Celery-threads"
    pool = "threads"


class _Dramatiq(_Kind):
    name = "Dramatiq"

    def available(self):
        return _installed("dramatiq") and _installed("pika")

    def fill(self, queue, n):
        import dramatiq

        from benchmarks._dramatiq_results_app import backend, broker

        broker.declare_queue(queue)
        keys = []
        for _ in range(n):
            message = dramatiq.Message(
                queue_name=queue, actor_name="noop", args=(), kwargs={}, options={}
            )
            broker.enqueue(message)
            keys.append(backend.build_message_key(message))
        return keys

    def argv(self, queue):
        return [
            sys.executable,
            "-m",
            "dramatiq",
            "benchmarks._dramatiq_results_app",
            "--processes",
            "1",
            "--queues",
            queue,
        ]

    def cleanup(self, queue):
        _delete_queues([queue, queue + ".DQ", queue + ".XQ"])


def _delete_queues(names):
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    for name in names:
        channel = connection.channel()
        channel.queue_delete(name)
        channel.close()
    connection.close()


def _consumers(queue):
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    finally:
        connection.close()


def _tree_cpu(pid):
    """CPU seconds (user + system) of process C{pid} and its descendants."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            with open("/proc/{}/stat".format(p)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for tid in os.listdir("/proc/{}/task".format(p)):
                with open("/proc/{}/task/{}/children".format(p, tid)) as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def start_worker(kind, queue):
    """Start C{kind}'s worker on C{queue}: (the process, its log file)."""
    log = tempfile.NamedTemporaryFile(prefix="txmsg-bench-worker-", suffix=".log", delete=False)
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        TXMSG_AMQP_URL=AMQP_URL,
        TXMSG_REDIS_URL=REDIS_URL,
        TXMSG_BENCH_QUEUE=queue,
    )
    process = subprocess.Popen(
        kind.argv(queue), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return process, log


def stop_worker(kind, queue, process, log, keys):
    """Stop a worker from L{start_worker}; delete its log, queues and result keys."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    os.unlink(log.name)
    kind.cleanup(queue)
    pipe = kind.redis.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    pipe.execute()


def one_run(kind, n):
    """
    Queue C{n} tasks, run C{kind}'s worker over them: (tasks/s, tasks per
    CPU second of the worker's processes).
    """
    queue = "txmsg-bench-results-" + uuid.uuid4().hex[:10]
    keys = kind.fill(queue, n)
    process, log = start_worker(kind, queue)
    mark = keys[n // 10]
    try:
        deadline = time.monotonic() + 300
        while kind.keys_done([mark]) == 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("{} worker failed:\n{}".format(kind.name, _read(log.name)))
            time.sleep(0.005)
        start = time.perf_counter()
        cpu = _tree_cpu(process.pid)
        tail = keys[n // 10 :]
        # Watch the last task's result only (a light poll), then check all.
        while kind.keys_done(tail[-1:]) == 0 or kind.keys_done(tail) < len(tail):
            if process.poll() is not None or time.monotonic() > deadline:
                missing = len(tail) - kind.keys_done(tail)
                raise SystemExit(
                    "{} worker: {} results missing:\n{}".format(kind.name, missing, _read(log.name))
                )
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        cpu = _tree_cpu(process.pid) - cpu
    finally:
        stop_worker(kind, queue, process, log, keys)
    done = len(keys) - n // 10 - 1
    return done / elapsed, done / max(cpu, 1e-3)


def _read(path):
    with open(path, errors="replace") as f:
        return f.read()[-3000:]


def results_rows(tasks, rounds):
    """
    Run the rows; return the lines to print.
    """
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    kinds = [k(r) for k in (_Txmsg, _Celery, _CeleryThreads, _Dramatiq)]
    present = [k for k in kinds if k.available()]
    absent = [k.name for k in kinds if not k.available()]
    rates = {k.name: [] for k in present}
    per_cpu = {k.name: [] for k in present}
    for i in range(rounds):
        for kind in present:
            sys.stderr.write(
                "results round {}/{}: {} ({} tasks)... ".format(i + 1, rounds, kind.name, tasks)
            )
            # Celery's solo pool is slow here: fewer tasks keep the run short.
            rate, efficiency = one_run(kind, min(tasks, 300) if kind.name == "Celery" else tasks)
            sys.stderr.write("{:.0f} tasks/s, {:.0f} per CPU s\n".format(rate, efficiency))
            rates[kind.name].append(rate)
            per_cpu[kind.name].append(efficiency)
    medians = {name: statistics.median(v) for name, v in rates.items()}
    cpu_medians = {name: statistics.median(v) for name, v in per_cpu.items()}
    tx, tx_cpu = medians["txmsg"], cpu_medians["txmsg"]
    lines = [
        "",
        "Results stored in Redis: no-op tasks, one worker process each, {} tasks x {} "
        "rounds (median tasks/s)".format(tasks, rounds),
        "{:<34} {:>9} {:>9} {:>11} {:>9}".format(
            "worker", "tasks/s", "txmsg/x", "tasks/CPU s", "txmsg/x"
        ),
    ]
    label = {
        "txmsg": "txmsg --results (prefetch 100)",
        "Celery": "Celery solo + Redis backend",
        "Celery-threads": "Celery 1 thread + Redis backend",
        "Dramatiq": "Dramatiq 1 proc + Results (Redis)",
    }
    for name, value in medians.items():
        c = cpu_medians[name]
        lines.append(
            "{:<34} {:>9.0f} {:>9.2f} {:>11.0f} {:>9.2f}".format(
                label[name], value, tx / value, c, tx_cpu / c
            )
        )
    lines.append(
        "(tasks/CPU s: tasks per second of CPU used by the worker's processes, "
        "the figure the machine's load disturbs least)"
    )
    if absent:
        lines.append(
            "({} not installed: pip install -r requirements-bench.txt)".format(", ".join(absent))
        )
    return lines
