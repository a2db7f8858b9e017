# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker roster in Redis: each worker's status under
C{txmsg:worker:<name>} with a TTL (so dead workers disappear), and the set of
names in C{txmsg:workers}.
"""

from __future__ import annotations

import json
import math
import os
import socket
from typing import Any

from twisted.internet.defer import Deferred, gatherResults

__all__ = [
    "WORKERS_KEY",
    "default_worker_name",
    "list_workers",
    "register_worker",
    "unregister_worker",
    "worker_key",
]

#: The set of registered worker names.
WORKERS_KEY = "txmsg:workers"


def default_worker_name() -> str:
    """
    C{<host>.<pid>}: unique per process on a machine.
    """
    return "{}.{}".format(socket.gethostname(), os.getpid())


def worker_key(name: str) -> str:
    """
    The key holding worker C{name}'s status.
    """
    return "txmsg:worker:" + name


def register_worker(handler: Any, status: dict[str, Any], ttl: float) -> Deferred[Any]:
    """
    Store C{status} (which has a C{name}) for C{ttl} seconds.

    @param handler: a txredisapi command handler.
    """
    name = status["name"]
    return gatherResults(
        [
            handler.set(worker_key(name), json.dumps(status), expire=max(1, math.ceil(ttl))),
            handler.sadd(WORKERS_KEY, name),
        ],
        consumeErrors=True,
    )


def unregister_worker(handler: Any, name: str) -> Deferred[Any]:
    """
    Remove worker C{name} from the registry.
    """
    return gatherResults(
        [handler.delete(worker_key(name)), handler.srem(WORKERS_KEY, name)], consumeErrors=True
    )


async def list_workers(handler: Any) -> list[dict[str, Any]]:
    """
    The status of every live worker, by name; names whose status expired
    (the worker died) are removed from the set.
    """
    names = sorted(await handler.smembers(WORKERS_KEY) or [])
    workers = []
    for name in names:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        raw = await handler.get(worker_key(name))
        if raw is None:
            await handler.srem(WORKERS_KEY, name)
            continue
        try:
            workers.append(json.loads(raw))
        except ValueError:
            continue
    return workers
