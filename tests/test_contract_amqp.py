# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The AMQP contract suite against the real RabbitMQ at 127.0.0.1:5672; the same
suite runs on L{txmsg.testing.MemoryBroker} in C{trial txmsg}
(C{txmsg/test/test_contract_amqp.py}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests._amqp_support import (
    SHARED_URL,
    cleanup,
    close_connections_named,
    require_broker,
)
from txmsg.amqp import AMQPConnection
from txmsg.test._contract_amqp import WorkerContract
from txmsg.test._contract_amqp_broker import AMQPBrokerContract
from txmsg.test._contract_amqp_delays import DelayContract
from txmsg.test._contract_base import RealRunner


class RealAMQPContractTests(
    RealRunner, AMQPBrokerContract, DelayContract, WorkerContract, TestCase
):
    """L{AMQPBrokerContract} (with L{AMQPContract}) and L{WorkerContract} on RabbitMQ."""

    def setUp(self) -> None:
        require_broker()
        RealRunner.setUp(self)
        self._queues: list = []
        self._exchanges: list = []
        self.addCleanup(lambda: deferToThread(cleanup, self._queues, self._exchanges))

    def make_connection(self, **kw: Any) -> Any:
        from twisted.application.internet import backoffPolicy

        kw.setdefault("connection_name", self.unique("txmsg-contract"))
        kw.setdefault("retry_policy", backoffPolicy(initialDelay=0.2, maxDelay=2.0))
        conn = AMQPConnection(SHARED_URL, **kw)
        conn.startService()
        self.on_cleanup(conn.stopService)
        return conn

    async def drop(self, conn: Any) -> None:
        n = await deferToThread(close_connections_named, conn.connection_name)
        self.assertEqual(n, 1)

    def forget_queue(self, name: str) -> None:
        self._queues.append(name)

    def forget_exchange(self, name: str) -> None:
        self._exchanges.append(name)

    def make_worker(self, tasks: Any, **kw: Any) -> Any:
        from txmsg.worker.service import WorkerService

        return WorkerService(tasks, amqp=AMQPConnection(SHARED_URL), **kw)
