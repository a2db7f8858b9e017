# -*- test-case-name: txmsg.test.test_worker_tasks,txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The task worker: declare tasks on a L{TaskCatalog}, run them with
C{twistd -n txmsg-worker --tasks your.module}; send them with a
L{txmsg.worker.client.TaskClient} through their typed handles.
"""

from txmsg.worker.envelope import MalformedTask, Task, TaskResult
from txmsg.worker.handles import TaskFailed, TaskHandle, TaskRef
from txmsg.worker.retry import RetryPolicy
from txmsg.worker.retry_rules import Backoff, Retry
from txmsg.worker.signature import Signature
from txmsg.worker.tasks import TaskCatalog, TaskContext, TaskRegistry

__all__ = [
    "Backoff",
    "MalformedTask",
    "Retry",
    "RetryPolicy",
    "Signature",
    "Task",
    "TaskCatalog",
    "TaskContext",
    "TaskFailed",
    "TaskHandle",
    "TaskRef",
    "TaskRegistry",
    "TaskResult",
]
