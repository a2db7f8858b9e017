# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tasks for the operations integration tests (run by C{twistd txmsg-worker}).
"""

from txmsg.worker.tasks import TaskCatalog

tasks = TaskCatalog()


@tasks.task
def add(x, y):  # type: ignore[no-untyped-def]
    """Succeeds with the sum."""
    return x + y


@tasks.task(max_retries=0)
def fail(message):  # type: ignore[no-untyped-def]
    """Always fails; with no retries it is dead-lettered at once."""
    raise ValueError(message)


@tasks.task
def log_url(url):  # type: ignore[no-untyped-def]
    """Log C{url} as a field and baked into a format string (redaction tests)."""
    from twisted.logger import Logger

    log = Logger(namespace="tests.ops")
    log.info("Task connecting to {url}", url=url)
    log.info("Task connecting to " + url)
    return "logged"
