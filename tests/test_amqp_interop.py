# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Every txmsg AMQP example against the seed's own blocking-pika program (ported
to pika 1.x, in tests/seed_programs/), in both directions, on the shared
RabbitMQ.  Each test uses its own queue/exchange name.
"""

import os

from twisted.trial.unittest import TestCase

from tests._amqp_support import Proc, cleanup, env, require_broker, unique

SEEDS = os.path.join("tests", "seed_programs")


def seed(name):
    return os.path.join(SEEDS, name + ".py")


def example(name):
    return os.path.join("examples", "amqp_" + name + ".py")


class InteropTests(TestCase):
    """txmsg examples interoperate with the seed programs."""

    def setUp(self):
        require_broker()
        self.name = unique("txmsg-interop")
        self.env = env(
            TXMSG_EXAMPLE_NAME=self.name,
            SEED_NAME=self.name,
            TXMSG_EXAMPLE_COUNT="1",
            SEED_COUNT="1",
        )

    def pair(
        self,
        receiver,
        sender,
        ready,
        expected,
        receiver_args=(),
        sender_args=(),
        queues=(),
        exchanges=(),
    ):
        self.addCleanup(cleanup, queues=list(queues), exchanges=list(exchanges))
        rx = Proc([receiver] + list(receiver_args), self.env)
        self.addCleanup(rx.kill)
        rx.wait_for(ready)
        tx = Proc([sender] + list(sender_args), self.env)
        self.addCleanup(tx.kill)
        tx_out = tx.finish()
        rx_out = rx.finish()
        for text in expected:
            self.assertIn(text, rx_out + "\n" + tx_out)
        return rx_out, tx_out

    def test_seed_send_to_txmsg_receive(self):
        """The seed's send.py reaches txmsg's amqp_receive.py (S12)."""
        self.pair(
            example("receive"),
            seed("send"),
            "Waiting for messages",
            ["Received b'Hello World!'"],
            queues=[self.name],
        )

    def test_txmsg_send_to_seed_receive(self):
        """txmsg's amqp_send.py reaches the seed's receive.py (S12)."""
        self.pair(
            seed("receive"),
            example("send"),
            "Waiting for messages",
            ["Received b'Hello World!'"],
            queues=[self.name],
        )

    def test_seed_new_task_to_txmsg_worker(self):
        """The seed's new_task.py feeds txmsg's worker (S13); the task is acked."""
        self.pair(
            example("worker"),
            seed("new_task"),
            "Waiting for messages",
            ["Received b'task.'", " [x] Done"],
            sender_args=["task."],
            queues=[self.name],
        )
        self.assertQueueEmpty(self.name)

    def test_txmsg_new_task_to_seed_worker(self):
        """txmsg's amqp_new_task.py feeds the seed's worker.py (S13)."""
        self.pair(
            seed("worker"),
            example("new_task"),
            "Waiting for messages",
            ["Received b'job'", " [x] Done"],
            sender_args=["job"],
            queues=[self.name],
        )
        self.assertQueueEmpty(self.name)

    def test_txmsg_emit_log_to_seed_receive_logs(self):
        """txmsg's publisher feeds the seed's fanout subscriber receive_logs.py (S14)."""
        self.pair(
            seed("receive_logs"),
            example("emit_log"),
            "Waiting for logs",
            ["b'info: Hello World!'"],
            exchanges=[self.name],
        )

    def test_seed_emit_log_to_txmsg_receive_logs(self):
        """The seed's emit_log.py reaches txmsg's fanout subscriber (S14)."""
        self.pair(
            example("receive_logs"),
            seed("emit_log"),
            "Waiting for logs",
            ["b'info: Hello World!'"],
            sender_args=["info: Hello World!"],
            exchanges=[self.name],
        )

    def test_direct_both_ways(self):
        """Direct routing by severity works both ways (S15)."""
        self.pair(
            seed("receive_logs_direct"),
            example("emit_log_direct"),
            "Waiting for logs",
            ["'error':b'disk full'"],
            receiver_args=["error", "warning"],
            sender_args=["error", "disk full"],
            exchanges=[self.name],
        )
        self.pair(
            example("receive_logs_direct"),
            seed("emit_log_direct"),
            "Waiting for logs",
            ["'warning':b'low space'"],
            receiver_args=["error", "warning"],
            sender_args=["warning", "low space"],
            exchanges=[self.name],
        )

    def test_topic_both_ways(self):
        """Topic routing with * and # works both ways (S15)."""
        self.pair(
            seed("receive_logs_topic"),
            example("emit_log_topic"),
            "Waiting for logs",
            ["'kern.critical':b'oops'"],
            receiver_args=["kern.*", "#.audit"],
            sender_args=["kern.critical", "oops"],
            exchanges=[self.name],
        )
        self.pair(
            example("receive_logs_topic"),
            seed("emit_log_topic"),
            "Waiting for logs",
            ["'a.b.audit':b'trail'"],
            receiver_args=["kern.*", "#.audit"],
            sender_args=["a.b.audit", "trail"],
            exchanges=[self.name],
        )

    def test_seed_rpc_client_calls_txmsg_server(self):
        """The seed's rpc_client.py calls txmsg's RPC server (S16)."""
        rx, tx = self.pair(
            example("rpc_server"),
            seed("rpc_client"),
            "Awaiting RPC requests",
            ["Got 55", "fib(10)"],
            sender_args=["10"],
            queues=[self.name],
        )

    def test_txmsg_rpc_client_calls_seed_server(self):
        """txmsg's RPC client calls the seed's rpc_server.py (S16)."""
        self.pair(
            seed("rpc_server"),
            example("rpc_client"),
            "Awaiting RPC requests",
            ["Got 144", "fib(12)"],
            sender_args=["12"],
            queues=[self.name],
        )

    def test_txmsg_rpc_client_calls_txmsg_server(self):
        """txmsg's RPC client and server work together (fib(30), as in the seed)."""
        self.pair(
            example("rpc_server"),
            example("rpc_client"),
            "Awaiting RPC requests",
            ["Got 832040"],
            queues=[self.name],
        )

    def assertQueueEmpty(self, name):
        from tests._amqp_support import blocking

        conn = blocking()
        try:
            ok = conn.channel().queue_declare(name, passive=True)
            self.assertEqual((ok.method.message_count, ok.method.consumer_count), (0, 0))
        finally:
            conn.close()
