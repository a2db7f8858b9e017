# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The AMQP contract suite on L{txmsg.testing.MemoryBroker}; the same suite runs
against RabbitMQ in C{tests/test_contract_amqp.py}.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._contract_amqp import WorkerContract
from txmsg.test._contract_amqp_broker import AMQPBrokerContract
from txmsg.test._contract_amqp_delays import DelayContract
from txmsg.test._contract_base import MemoryRunner
from txmsg.testing import MemoryBroker, SyncThreadPool
from txmsg.worker.service import WorkerService


class MemoryAMQPContractTests(
    MemoryRunner, AMQPBrokerContract, DelayContract, WorkerContract, SynchronousTestCase
):
    """L{AMQPBrokerContract} (with L{AMQPContract}) and L{WorkerContract} on the in-memory broker."""

    def setUp(self) -> None:
        MemoryRunner.setUp(self)
        self.broker = MemoryBroker(self.clock)

    def make_connection(self, **kw: Any) -> Any:
        conn = self.broker.connection(**kw)
        conn.startService()
        self.on_cleanup(conn.stopService)
        return conn

    async def drop(self, conn: Any) -> None:
        self.broker.drop_connections(only=conn)

    def forget_queue(self, name: str) -> None:
        pass

    def forget_exchange(self, name: str) -> None:
        pass

    def make_worker(self, tasks: Any, **kw: Any) -> Any:
        return WorkerService(
            tasks,
            amqp=self.broker.connection(),
            reactor=self.clock,
            threadpool=SyncThreadPool(),
            **kw,
        )
