# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A task module for C{twistd -n txmsg-worker}: copy it and put your own tasks in.

Run it from the repository root (twistd finds task modules in its current
directory, like C{python -m})::

    twistd -n txmsg-worker --tasks examples.worker_tasks

and submit tasks from any AMQP client: a persistent message on the queue
C{tasks} with C{content_type=application/json} and the body
C{{"task": "add", "args": [2, 3], "kwargs": {}, "id": "some-id"}}; with
C{reply_to} and C{correlation_id} the result comes back as
C{{"id": "some-id", "status": "ok", "result": 5}}.

The kinds of task a worker runs:

  - a plain function (C{add}, C{fib}): runs on the reactor thread, so it must
    be quick and must not block;
  - a function declared C{blocking=True} (C{sleep}, C{slow_fib}): runs in the
    worker's thread pool (C{--concurrency} threads), never on the reactor;
  - a coroutine function (C{wait}): runs on the reactor and may await
    Deferreds; cancelling it (time limit, C{stop-job}, shutdown) cancels what
    it awaits;
  - a task that raises (C{fail}) is retried C{--max-retries} times through
    the broker's delay queues, then dead-lettered to C{tasks.dead}.
"""

import time

from twisted.internet.task import deferLater

from txmsg.worker import TaskCatalog

tasks = TaskCatalog()


@tasks.task
def add(x, y):
    """
    C{x + y}: a quick task on the reactor thread.
    """
    return x + y


def _fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@tasks.task
def fib(n):
    """
    The n-th Fibonacci number (seed S16's RPC server, iteratively).
    """
    return _fib(int(n))


@tasks.task(blocking=True)
def sleep(seconds):
    """
    Block for C{seconds} (C{time.sleep}): declared blocking, so it runs in
    the thread pool and the reactor stays responsive.
    """
    time.sleep(float(seconds))
    return seconds


@tasks.task(blocking=True, timeout=60)
def slow_fib(n):
    """
    fib(n) computed the seed's exponential way: CPU-bound, so blocking; its
    time limit is 60 s (after that the result is discarded and the task is
    retried; the thread itself runs on until the function returns).
    """

    def slow(k):
        return k if k < 2 else slow(k - 1) + slow(k - 2)

    return slow(int(n))


@tasks.task
async def wait(seconds, *, context):
    """
    Wait C{seconds} without blocking (a coroutine task on the reactor) and
    say which attempt this was and whether the broker delivered it before.
    """
    from twisted.internet import reactor

    await deferLater(reactor, float(seconds))
    return {"waited": seconds, "attempt": context.attempt, "redelivered": context.redelivered}


class TaskFailed(Exception):
    """
    What L{fail} raises.
    """


@tasks.task
def fail(message="always fails"):
    """
    Always raise: retried C{--max-retries} times, then dead-lettered with the
    error in the dead letter's headers.
    """
    raise TaskFailed(message)


@tasks.task
def noop():
    """
    Do nothing (the benchmark's task).
    """
    return None
