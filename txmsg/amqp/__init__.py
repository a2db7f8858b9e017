# -*- test-case-name: txmsg.test.test_amqp_exports -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
RabbitMQ for Twisted, on pika's Twisted adapter: a reconnecting connection
service that replays its topology, confirmed publishing, acked consuming and
RPC.

Importing this package does not import pika's Twisted adapter (which would
install the global reactor): that happens when a connection is started.
"""

from txmsg.amqp.connection import (
    AMQPConnection,
    AMQPConnectionFailed,
    LoginRefused,
    NotConnectedError,
    ServiceStopped,
)
from txmsg.amqp.consumer import (
    AckWith,
    Consumer,
    ConsumerStopped,
    DeadLetter,
    Delivery,
    Disposition,
    DropMessage,
    ErrorPolicy,
    Outcome,
    Publish,
    RetryLater,
)
from txmsg.amqp.delay_levels import LEVELS, MAX_DELAY, TICK, DelayTooLong
from txmsg.amqp.delayed import DelayedDelivery, DelayTopologyFailed
from txmsg.amqp.properties import make_properties
from txmsg.amqp.publisher import (
    Publisher,
    PublishError,
    PublisherStopped,
    PublishLost,
    PublishNacked,
    PublishReturned,
    PublishTimeout,
)
from txmsg.amqp.rpc import (
    DIRECT_REPLY_TO,
    RPCClient,
    RPCError,
    RPCLost,
    RPCServer,
    RPCTimeout,
    RPCUnroutable,
)
from txmsg.amqp.topology import Binding, Exchange, Queue, Topology, queue_arguments
from txmsg.amqp.url import DEFAULT_AMQP_URL, amqp_url, parse_amqp_url

__all__ = [
    "DEFAULT_AMQP_URL",
    "DIRECT_REPLY_TO",
    "AMQPConnection",
    "AckWith",
    "AMQPConnectionFailed",
    "Binding",
    "Consumer",
    "ConsumerStopped",
    "DeadLetter",
    "Delivery",
    "DelayTooLong",
    "DelayTopologyFailed",
    "DelayedDelivery",
    "Disposition",
    "DropMessage",
    "ErrorPolicy",
    "Exchange",
    "LEVELS",
    "LoginRefused",
    "MAX_DELAY",
    "NotConnectedError",
    "Outcome",
    "Publish",
    "PublishError",
    "PublishLost",
    "PublishNacked",
    "PublishReturned",
    "PublishTimeout",
    "Publisher",
    "PublisherStopped",
    "Queue",
    "RPCClient",
    "RPCError",
    "RPCLost",
    "RPCServer",
    "RPCTimeout",
    "RPCUnroutable",
    "RetryLater",
    "ServiceStopped",
    "TICK",
    "Topology",
    "amqp_url",
    "make_properties",
    "parse_amqp_url",
    "queue_arguments",
]
