# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Celery app of C{benchmarks/worker.py --broker redis}: Redis broker, no
result backend, one no-op task.
"""

import os

from celery import Celery

app = Celery("bench", broker=os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/0"))
app.conf.worker_hijack_root_logger = False


@app.task(name="noop")
def noop():
    """Do nothing."""
