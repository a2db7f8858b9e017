# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Dramatiq peer of C{benchmarks/worker.py}'s result rows: a no-op actor on
RabbitMQ with the Results middleware on Redis, on the queue named by
C{$TXMSG_BENCH_QUEUE}.  Run by C{dramatiq benchmarks._dramatiq_results_app}.
"""

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

AMQP_URL = os.environ.get("TXMSG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS_URL = os.environ.get("TXMSG_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("TXMSG_BENCH_QUEUE", "txmsg-bench-dramatiq")

backend = RedisBackend(url=REDIS_URL)
broker = RabbitmqBroker(url=AMQP_URL)
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, queue_name=QUEUE, max_retries=0)
def noop():
    """Do nothing (the result, None, goes to the Redis backend)."""
    return None
