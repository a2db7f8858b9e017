# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: the Redis seed examples run as a user would run them.
"""

from __future__ import annotations

import uuid

from twisted.trial.unittest import TestCase

from tests._redis_support import (
    SHARED_URL,
    RedisServer,
    redis_py,
    run_python,
    subprocess_env,
)


class RedisExamplesTests(TestCase):
    """
    examples/redis_pubsub.py and examples/order_timeout.py.
    """

    timeout = 90

    async def test_redis_pubsub_example(self) -> None:
        """
        The RedisHelper demo subscribes, publishes three words and prints
        them back.
        """
        redis_py()
        channel = "txmsg-test-" + uuid.uuid4().hex
        out, err, code = await run_python(
            ["examples/redis_pubsub.py", "--channel", channel],
            subprocess_env(TXMSG_REDIS_URL=SHARED_URL),
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"done: hello from txmsg", out)

    async def test_redis_pubsub_pub_with_channel(self) -> None:
        """
        C{pub --channel X hello}: an option between the mode and the message
        is accepted, and the message is published on that channel.
        """
        channel = "txmsg-test-" + uuid.uuid4().hex
        out, err, code = await run_python(
            ["examples/redis_pubsub.py", "pub", "--channel", channel, "hello"],
            subprocess_env(TXMSG_REDIS_URL=SHARED_URL),
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"published to 0 subscriber(s)", out)

    async def test_order_timeout_example(self) -> None:
        """
        The order-timeout demo cancels the unpaid order and keeps the paid
        one (on a private server whose notifications start off).
        """
        server = RedisServer().start()
        self.addCleanup(server.cleanup)
        out, err, code = await run_python(
            ["examples/order_timeout.py", "--timeout", "1"],
            subprocess_env(TXMSG_REDIS_URL=server.url),
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"order 1002 not paid in time: cancelled", out)
        self.assertIn(b"order 1001: paid", out)
