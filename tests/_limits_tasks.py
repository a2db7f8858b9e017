# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tasks of the limits integration tests (C{--tasks tests._limits_tasks}): each
appends what it did, with the time and its worker's pid, to a file named in
its arguments (one C{write} of one line in append mode: lines from several
processes do not interleave).
"""

import os
import time

from twisted.internet.task import deferLater

from txmsg.worker import TaskCatalog

tasks = TaskCatalog()


def _note(path, *fields):
    line = " ".join(str(f) for f in fields) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("ascii"))
    finally:
        os.close(fd)


@tasks.task(rate_limit="50/s")
def rated(path, n):
    """Note its start."""
    _note(path, "start", repr(time.time()), os.getpid(), n)


@tasks.task(max_concurrency=2, concurrency_lease=2)
async def slot(path, n, seconds):
    """Note its start, wait C{seconds} on the reactor, note its end."""
    from twisted.internet import reactor

    _note(path, "start", repr(time.time()), os.getpid(), n)
    await deferLater(reactor, seconds, lambda: None)
    _note(path, "end", repr(time.time()), os.getpid(), n)
