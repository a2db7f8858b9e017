# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Submit tasks to a txmsg worker on Redis Streams with nothing but redis-py,
and read their results: the wire format in practice (docs/redis_worker.md).

    twistd -n txmsg-worker --tasks examples.worker_tasks \\
        --broker redis://127.0.0.1:6379/0
    python examples/redis_streams_producer.py [--queue tasks] [--count 3]

Each task is one XADD to the queue's stream, C{txmsg:{<queue>}:stream},
with the v1 envelope as C{body}; the worker adds the result to the stream
named in C{reply_to}, with the task id as C{correlation_id}.  Redis:
$TXMSG_REDIS_URL or redis://127.0.0.1:6379/0.
"""

import argparse
import json
import os
import sys
import uuid

import redis


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", default="tasks")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    r = redis.Redis.from_url(os.environ.get("TXMSG_REDIS_URL") or "redis://127.0.0.1:6379/0")
    replies = "txmsg:{replies-" + uuid.uuid4().hex + "}"
    ids = {}
    for n in range(args.count):
        task_id = uuid.uuid4().hex
        body = {"task": "add", "args": [n, n], "kwargs": {}, "id": task_id}
        r.xadd(
            "txmsg:{" + args.queue + "}:stream",
            {
                "body": json.dumps(body),
                "content_type": "application/json",
                "message_id": task_id,
                "correlation_id": task_id,
                "reply_to": replies,
            },
        )
        ids[task_id] = n
    last = "0-0"
    try:
        while ids:
            got = r.xread({replies: last}, block=int(args.timeout * 1000))
            if not got:
                print("no reply within {} s".format(args.timeout), file=sys.stderr)
                return 1
            for entry_id, fields in got[0][1]:
                last = entry_id
                reply = json.loads(fields[b"body"])
                n = ids.pop(fields[b"correlation_id"].decode())
                print("add({0}, {0}) = {1}".format(n, reply["result"]), flush=True)
    finally:
        r.delete(replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
