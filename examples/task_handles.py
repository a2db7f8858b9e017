#!/usr/bin/env python
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Task handles from a script: send a task and read its result through its
reference, call one (RPC), send a signature with options, revoke one that
waits.  With a worker that records results running::

    twistd -n txmsg-worker --tasks examples.worker_tasks --results redis://127.0.0.1:6379/0 &
    python examples/task_handles.py [QUEUE [RESULTS_URL]]

Each line printed is a JSON object.
"""

import json
import os
import sys

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from txmsg.worker.client import TaskClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from worker_tasks import add, tasks  # noqa: E402  (this directory's task module)


async def main(reactor, queue="tasks", results="redis://127.0.0.1:6379/0"):
    client = await TaskClient.connect(queue=queue, results=results, reactor=reactor)
    tasks.bind(client)
    try:
        ref = await add.send(2, 3)  # a TaskRef once the broker has it
        print(json.dumps({"sent": ref.id, "result": await ref.result(timeout=30)}))
        state = await ref.status()
        print(json.dumps({"status": state.status, "worker": state.worker}))
        print(json.dumps({"called": await add.call(20, 22)}))
        later = await add.s(1, 1).send(countdown=60, priority=5)
        await later.revoke()  # not run when it comes due
        print(json.dumps({"revoked": later.id, "status": (await later.status()).status}))
    finally:
        tasks.bind(None)
        await client.stopService()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor, *sys.argv[1:])))
