# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The delayed-task rows of C{benchmarks/worker.py}: tasks sent with a
countdown of 1 s, end to end, results stored in Redis, one worker process
each, in the same run:

  - txmsg: C{twistd -n txmsg-worker --results redis://...}; the tasks wait in
    RabbitMQ's delay levels (C{docs/delays.md}), never in the worker;
  - Celery (when installed): C{apply_async(countdown=1)}; Celery's worker
    holds ETA tasks in its memory until they are due;
  - Dramatiq (when installed): C{enqueue(delay=1000)}; delayed messages go to
    the C{.DQ} queue and its worker holds them in memory until due.

Each worker is started first; then N tasks are sent as fast as the client
can, each with its ETA (send time + 1 s) noted; the driver watches Redis for
the stored results (every 10 ms, pipelined) and notes when each appears.
Lateness = completion - ETA: printed as p50 / p99 / max, with the count of
tasks completed before their ETA (must be 0), and the worker's CPU per task.
"""

import json
import os
import statistics
import sys
import time
import uuid

import pika

from benchmarks._worker_results import (
    AMQP_URL,
    REDIS_URL,
    _Celery,
    _consumers,
    _Dramatiq,
    _read,
    _tree_cpu,
    _Txmsg,
    start_worker,
    stop_worker,
)

COUNTDOWN = 1.0


def _txmsg_send(queue, n):
    from txmsg.amqp.delay_levels import encode, first_level, level_name, ticks

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    wait = ticks(COUNTDOWN)
    exchange = level_name("txmsg.delay", first_level(wait))
    key = encode(wait, queue)
    sent = {}
    for i in range(n):
        task_id = "{}-{}".format(queue, i)
        body = json.dumps({"task": "noop", "args": [], "kwargs": {}, "id": task_id})
        sent[task_id] = time.time() + COUNTDOWN
        channel.basic_publish(
            exchange,
            key,
            body,
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=task_id
            ),
        )
    connection.close()
    return {"txmsg:{" + i + "}:result": eta for i, eta in sent.items()}


def _celery_send(queue, n):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    from benchmarks._celery_results_app import app

    sent = {}
    with app.producer_pool.acquire(block=True) as producer:
        for i in range(n):
            task_id = "{}-{}".format(queue, i)
            sent["celery-task-meta-" + task_id] = time.time() + COUNTDOWN
            app.send_task(
                "noop", queue=queue, task_id=task_id, producer=producer, countdown=COUNTDOWN
            )
    return sent


def _dramatiq_send(queue, n):
    import dramatiq

    from benchmarks._dramatiq_results_app import backend, broker

    broker.declare_queue(queue)
    sent = {}
    for _ in range(n):
        message = dramatiq.Message(
            queue_name=queue, actor_name="noop", args=(), kwargs={}, options={}
        )
        eta = time.time() + COUNTDOWN
        broker.enqueue(message, delay=int(COUNTDOWN * 1000))
        sent[backend.build_message_key(message)] = eta
    return sent


KINDS = [(_Txmsg, _txmsg_send), (_Celery, _celery_send), (_Dramatiq, _dramatiq_send)]


def one_run(kind, send, n):
    """Start C{kind}'s worker, send C{n} delayed tasks: (lateness list, CPU per task)."""
    queue = "txmsg-bench-delayed-" + uuid.uuid4().hex[:10]
    process, log = start_worker(kind, queue)
    keys = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _consumers(queue) > 0:
                    break
            except pika.exceptions.ChannelClosedByBroker:
                pass  # not declared yet
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("{} worker failed:\n{}".format(kind.name, _read(log.name)))
            time.sleep(0.05)
        time.sleep(0.5)  # let the worker finish its set-up (delay levels bound)
        cpu = _tree_cpu(process.pid)
        keys = send(queue, n)
        done = {}
        pending = list(keys)
        while pending:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "{} worker: {} results missing:\n{}".format(
                        kind.name, len(pending), _read(log.name)
                    )
                )
            pipe = kind.redis.pipeline(transaction=False)
            for key in pending:
                pipe.exists(key)
            now = time.time()
            still = []
            for key, found in zip(pending, pipe.execute(), strict=True):
                if found:
                    done[key] = now
                else:
                    still.append(key)
            pending = still
            time.sleep(0.01)
        cpu = _tree_cpu(process.pid) - cpu
    finally:
        stop_worker(kind, queue, process, log, list(keys))
    return [done[k] - eta for k, eta in keys.items()], cpu / n


def _pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def delayed_rows(tasks, rounds):
    """Run the rows; return the lines to print."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    kinds = [(k(r), send) for k, send in KINDS]
    present = [(k, s) for k, s in kinds if k.available()]
    absent = [k.name for k, _ in kinds if not k.available()]
    lateness = {k.name: [] for k, _ in present}
    cpu = {k.name: [] for k, _ in present}
    for i in range(rounds):
        for kind, send in present:
            sys.stderr.write(
                "delayed round {}/{}: {} ({} tasks, countdown {:g} s)... ".format(
                    i + 1, rounds, kind.name, tasks, COUNTDOWN
                )
            )
            late, per_task = one_run(kind, send, tasks)
            sys.stderr.write("p50 {:.0f} ms\n".format(statistics.median(late) * 1000))
            lateness[kind.name].extend(late)
            cpu[kind.name].append(per_task)
    lines = [
        "",
        "Delayed tasks (countdown {:g} s), results in Redis, one worker process each, "
        "{} tasks x {} rounds: lateness after the ETA".format(COUNTDOWN, tasks, rounds),
        "{:<10} {:>9} {:>9} {:>9} {:>7} {:>13}".format(
            "worker", "p50 ms", "p99 ms", "max ms", "early", "CPU ms/task"
        ),
    ]
    for name, values in lateness.items():
        lines.append(
            "{:<10} {:>9.0f} {:>9.0f} {:>9.0f} {:>7} {:>13.3f}".format(
                name,
                _pct(values, 50) * 1000,
                _pct(values, 99) * 1000,
                max(values) * 1000,
                sum(1 for v in values if v < -0.01),
                statistics.median(cpu[name]) * 1000,
            )
        )
    lines.append(
        "(early: completed over 10 ms before the ETA, clock resolution aside; txmsg's "
        "tasks wait in the broker, Celery's and Dramatiq's in their worker's memory)"
    )
    if absent:
        lines.append(
            "({} not installed: pip install -r requirements-bench.txt)".format(", ".join(absent))
        )
    return lines
