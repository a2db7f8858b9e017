# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A task module for the worker tests.
"""

from txmsg.worker.tasks import TaskCatalog

tasks = TaskCatalog()
other = TaskCatalog()


@tasks.task
def add(x, y):
    return x + y


@other.task
def ignored():
    return None
