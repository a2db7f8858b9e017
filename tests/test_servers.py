# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The servers the integration tests need are there: these fail (never skip)
when Redis or RabbitMQ is missing, with a message saying how to start them.
"""

import socket

from twisted.trial.unittest import SynchronousTestCase

HINT = "run `make servers` (scripts/ensure-servers.sh) to start it"


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ServersTests(SynchronousTestCase):
    """
    Redis and RabbitMQ answer on loopback.
    """

    def test_redis(self) -> None:
        """
        Redis answers PING on 127.0.0.1:6379.
        """
        self.assertTrue(_reachable(6379), "Redis is not listening on 127.0.0.1:6379: " + HINT)
        with socket.create_connection(("127.0.0.1", 6379), timeout=5) as s:
            s.sendall(b"PING\r\n")
            self.assertEqual(s.recv(64), b"+PONG\r\n")

    def test_rabbitmq(self) -> None:
        """
        RabbitMQ answers the AMQP 0-9-1 protocol header on 127.0.0.1:5672.
        """
        self.assertTrue(_reachable(5672), "RabbitMQ is not listening on 127.0.0.1:5672: " + HINT)
        with socket.create_connection(("127.0.0.1", 5672), timeout=5) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            frame = s.recv(7)
            self.assertEqual(frame[:1], b"\x01", "expected a Connection.Start method frame")
