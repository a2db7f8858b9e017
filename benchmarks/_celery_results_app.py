# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Celery peer of C{benchmarks/worker.py}'s result rows: a no-op task on
RabbitMQ with Celery's Redis result backend, on the queue named by
C{$TXMSG_BENCH_QUEUE}.  Run by C{celery -A benchmarks._celery_results_app
worker --pool solo}.
"""

import json
import os

from celery import Celery

AMQP_URL = os.environ.get("TXMSG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS_URL = os.environ.get("TXMSG_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("TXMSG_BENCH_QUEUE", "txmsg-bench-celery")

app = Celery("txmsg_bench", broker=AMQP_URL.replace("amqp://", "pyamqp://", 1), backend=REDIS_URL)
app.conf.task_default_queue = QUEUE
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False
app.conf.update(json.loads(os.environ.get("TXMSG_BENCH_CELERY_CONF") or "{}"))


@app.task(name="noop")
def noop():
    """Do nothing (the result, None, goes to the Redis backend)."""
    return None
