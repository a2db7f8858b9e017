# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tasks used by the worker integration tests (loaded by C{twistd txmsg-worker
--tasks tests._worker_tasks}): they report which process ran them and whether
the delivery was a redelivery, so tests can tell workers apart.
"""

import os
import time

from twisted.internet.task import deferLater

from txmsg.worker import Retry, TaskCatalog

tasks = TaskCatalog()


@tasks.task
def square(n, *, context):
    """
    C{n * n}, with the worker's pid and the redelivered flag.
    """
    return {"value": n * n, "pid": os.getpid(), "redelivered": context.redelivered}


@tasks.task(blocking=True)
def sleep(seconds, *, context):
    """
    Block a pool thread for C{seconds}.
    """
    time.sleep(seconds)
    return {"value": seconds, "pid": os.getpid(), "redelivered": context.redelivered}


@tasks.task
async def wait(seconds, *, context):
    """
    Wait C{seconds} on the reactor.
    """
    from twisted.internet import reactor

    await deferLater(reactor, seconds)
    return {"value": seconds, "pid": os.getpid(), "redelivered": context.redelivered}


@tasks.task
async def record(path, item, delay=0.0):
    """
    Wait C{delay} seconds, then append C{item} as a line to the file C{path}
    (an outcome record that survives broker restarts).
    """
    from twisted.internet import reactor

    if delay:
        await deferLater(reactor, delay)
    with open(path, "a") as f:
        f.write("{}\n".format(item))
    return item


@tasks.task(retry_for=(Exception,))
def fail(message="always fails"):
    """
    Always raise ValueError (retried all the same).
    """
    raise ValueError(message)


@tasks.task(retry_for=(Exception,))
def record_and_fail(path, item):
    """
    Append C{item} as a line to the file C{path} (a side effect one can
    count), then raise ValueError (retried all the same).
    """
    with open(path, "a") as f:
        f.write("{}\n".format(item))
    raise ValueError("recorded, then failed")


@tasks.task(blocking=True, max_retries=0)
def once(path, item, seconds):
    """
    Append C{item} to the file C{path} as it starts, then block a pool
    thread for C{seconds}; never retried.
    """
    with open(path, "a") as f:
        f.write("{}\n".format(item))
    time.sleep(seconds)
    return item


@tasks.task(max_retries=0)
async def record_once(path, item, delay=0.0):
    """
    L{record}, never retried: a delivery counted twice is dead-lettered.
    """
    return await record(path, item, delay)


@tasks.task
def record_id(path, *, context):
    """
    Append this task's id as a line to the file C{path} (the scheduler
    tests count each tick's runs this way).
    """
    with open(path, "a") as f:
        f.write(context.task.id + "\n")
    return context.task.id


@tasks.task
def arrived(path, item):
    """
    Append C{item} and the wall-clock time it ran to the file C{path} (the
    delayed-delivery tests compare it with the task's ETA).
    """
    with open(path, "a") as f:
        f.write("{} {:.6f}\n".format(item, time.time()))
    return item


@tasks.task(max_retries=2)
def raise_error(kind, *, context):
    """
    Raise C{ValueError} (not retried by default) or C{ConnectionError}
    (retried); report the attempt in the message.
    """
    error = ValueError if kind == "value" else ConnectionError
    raise error("attempt {}".format(context.attempt))


@tasks.task(max_retries=1)
def retry_once(delay, *, context):
    """
    C{raise Retry(delay)} on the first run; then return the attempt.
    """
    if context.attempt == 1:
        raise Retry(delay=delay)
    return {"value": context.attempt, "pid": os.getpid(), "redelivered": context.redelivered}
