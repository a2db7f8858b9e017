# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A task module, as C{twistd -n txmsg-worker --tasks examples.example_tasks}
would run it; tested without RabbitMQ by C{examples/test_example_tasks.py}.
"""

from txmsg.worker import TaskCatalog

tasks = TaskCatalog()


@tasks.task
def add(x, y):  # type: ignore[no-untyped-def]
    """Add two numbers."""
    return x + y


@tasks.task(max_retries=2)
def charge(order_id, amount, *, context):  # type: ignore[no-untyped-def]
    """Fails on its first attempt (a flaky payment gateway), then succeeds."""
    if amount <= 0:
        raise ValueError("amount must be positive")
    if context.attempt == 1:
        raise ConnectionError("gateway timeout")
    return {"order": order_id, "charged": amount, "attempt": context.attempt}
