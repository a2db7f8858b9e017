# -*- test-case-name: txmsg.test.test_worker_brokers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The broker-facing side of the worker: L{IWorkerBroker} and its providers
(RabbitMQ: L{txmsg.worker.brokers.amqp.AMQPWorkerBroker}).
"""

from txmsg.worker.brokers.interfaces import IncomingMessage, IWorkerBroker

__all__ = ["IWorkerBroker", "IncomingMessage"]
