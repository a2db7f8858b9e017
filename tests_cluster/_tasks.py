# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tasks of the cluster tests: each appends its item to a file, so the test
counts completions and duplicates; C{flaky} fails its first run (a retry
waits in the broker's delay queue).
"""

from __future__ import annotations

from txmsg.worker import TaskCatalog

tasks = TaskCatalog()


@tasks.task
def record(path: str, item: int) -> int:
    """Append C{item} to C{path}."""
    with open(path, "a") as f:
        f.write(f"{item}\n")
    return item


@tasks.task(max_retries=5)
def flaky(path: str, item: int, *, context) -> int:  # type: ignore[no-untyped-def]
    """Fail the first run (noted in C{path}.first), then append C{item}."""
    if context.attempt == 1:
        with open(path + ".first", "a") as f:
            f.write(f"{item}\n")
        raise RuntimeError("first run fails on purpose")
    return record(path, item)
