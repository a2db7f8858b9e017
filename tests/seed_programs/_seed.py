"""
Shared bits of the seed programs (tests only): the connection URL and the
queue/exchange names, overridable from the environment so parallel tests do
not collide; the defaults are the seeds' own names.
"""

import os
import sys

import pika


def connect():
    url = os.environ.get("TXMSG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    return pika.BlockingConnection(pika.URLParameters(url))


def name(default):
    return os.environ.get("SEED_NAME", default)


def count():
    """Stop after this many messages (SEED_COUNT), or never."""
    return int(os.environ.get("SEED_COUNT", "0"))


def out(text):
    print(text)
    sys.stdout.flush()
