# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tasks for the workflow integration tests (C{tests/test_workflows.py}):
each run is recorded as one line of a file, so the test counts runs
across worker processes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater

from txmsg.worker import TaskCatalog

tasks = TaskCatalog()


def _note(path: str, record: Any) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


@tasks.task
def wf_square(x: int) -> int:
    return x * x


@tasks.task
def wf_total(values: list[int], path: str) -> int:
    _note(path, {"total": len(values), "pid": os.getpid()})
    return sum(values)


@tasks.task(max_retries=0)
def wf_fail(x: int) -> int:
    raise ValueError("member {} fails".format(x))


@tasks.task
def wf_errback(error: dict[str, Any], path: str) -> None:
    _note(path, {"error": error, "pid": os.getpid()})


@tasks.task
async def wf_block(x: int, path: str) -> int:
    """Note the start, then wait until the file C{path}.release exists."""
    _note(path, {"start": x, "pid": os.getpid()})
    while not os.path.exists(path + ".release"):
        await deferLater(reactor, 0.1, lambda: None)
    return x * x
