# -*- test-case-name: txmsg.test.test_worker_tasks,txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The task worker: declare tasks on a L{TaskCatalog}, run them with
C{twistd -n txmsg-worker --tasks your.module}.
"""

from txmsg.worker.envelope import MalformedTask, Task, TaskResult
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.tasks import TaskCatalog, TaskContext, TaskRegistry

__all__ = [
    "MalformedTask",
    "RetryPolicy",
    "Task",
    "TaskCatalog",
    "TaskContext",
    "TaskRegistry",
    "TaskResult",
]
