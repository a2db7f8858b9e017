# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Raw handlers for C{twistd -n txmsg-worker --raw-handler QUEUE=module:function}:
queues that carry plain messages rather than v1 tasks, as in the seeds.

The seeds' work queue (S13, C{new_task.py} / C{worker.py}): one second of
work per dot in the body::

    twistd -n txmsg-worker --raw-handler task_queue=examples.worker_raw:work

The seeds' RPC server (S16): the body is a number, the reply is fib of it,
so the seed's blocking C{rpc_client.py} can call it::

    twistd -n txmsg-worker --raw-handler rpc_queue=examples.worker_raw:fib

Both at once (one worker, two queues) works as well.  A plain function runs in
the worker's thread pool (so C{time.sleep} is fine here); a coroutine function
would run on the reactor.  When the message has C{reply_to}, what the function
returns is sent there with the message's C{correlation_id}.
"""

import sys
import time


def out(text):
    """
    Print a line at once (twistd logs it).
    """
    print(text)
    sys.stdout.flush()


def work(body):
    """
    The seed's worker: sleep one second per dot in the body.
    """
    out(" [x] Received %r" % body)
    time.sleep(body.count(b"."))
    out(" [x] Done")


def fib(body):
    """
    The seed's RPC server: fib(n) for the number in the body, as text.
    """
    n = int(body)
    out(" [.] fib(%s)" % n)
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return str(a)
