# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The no-op task of C{benchmarks/worker.py --broker redis} for RQ and arq.
"""

import os


def noop():
    """Do nothing (RQ)."""


async def arq_noop(ctx):
    """Do nothing (arq)."""


class ArqSettings:
    """arq's worker settings: the private server and queue of the run."""

    functions = [arq_noop]
    queue_name = os.environ.get("BENCH_ARQ_QUEUE", "arq:queue")
    handle_signals = True


if "BENCH_ARQ_PORT" in os.environ:  # in arq's worker process only
    from arq.connections import RedisSettings

    ArqSettings.redis_settings = RedisSettings(port=int(os.environ["BENCH_ARQ_PORT"]))


arq_noop.__qualname__ = arq_noop.__name__ = "noop"
