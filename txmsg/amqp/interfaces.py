# -*- test-case-name: txmsg.test.test_testing_fakes -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The parts of pika's Twisted adapter that txmsg relies on, as interfaces.

pika's C{TwistedProtocolConnection} and C{TwistedChannel} provide them (they
do not declare it; the tests check them with C{verifyClass}), and so does
the in-memory broker of L{txmsg.testing}, which declares them.  Code that
talks to a broker channel should need nothing beyond L{IChannel}.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

__all__ = ["IAMQPConnection", "IChannel"]


class IChannel(Interface):
    """
    An AMQP channel with pika's Twisted semantics: methods that wait for the
    broker return a Deferred that errbacks with the close reason if the
    channel closes first; C{basic_ack}/C{basic_nack} raise
    C{ChannelWrongStateError} on a closed channel; consumer queues are
    closed with C{ConsumerCancelled}; with confirms on, C{basic_publish}
    fires with C{Basic.Ack} or fails with C{NackError}/C{UnroutableError}.
    """

    channel_number = Attribute("The channel's number on its connection.")
    is_open = Attribute("Whether the channel is open.")
    is_closed = Attribute("Whether the channel is closed.")
    is_closing = Attribute("Whether a client close is in progress.")
    on_closed = Attribute("A Deferred fired with the close reason when the channel closes.")

    def exchange_declare(  # type: ignore[no-untyped-def]
        exchange,
        exchange_type="direct",
        passive=False,
        durable=False,
        auto_delete=False,
        internal=False,
        arguments=None,
    ):
        """Declare an exchange; returns a Deferred."""

    def queue_declare(  # type: ignore[no-untyped-def]
        queue, passive=False, durable=False, exclusive=False, auto_delete=False, arguments=None
    ):
        """Declare a queue; the Deferred fires with a frame whose C{method} is C{DeclareOk}."""

    def queue_bind(queue, exchange, routing_key=None, arguments=None):  # type: ignore[no-untyped-def]
        """Bind a queue to an exchange; returns a Deferred."""

    def exchange_bind(destination, source, routing_key="", arguments=None):  # type: ignore[no-untyped-def]
        """Bind exchange C{destination} to exchange C{source}; returns a Deferred."""

    def queue_purge(queue):  # type: ignore[no-untyped-def]
        """Drop a queue's ready messages; returns a Deferred."""

    def basic_qos(prefetch_size=0, prefetch_count=0, global_qos=False):  # type: ignore[no-untyped-def]
        """Set the prefetch; returns a Deferred."""

    def confirm_delivery():  # type: ignore[no-untyped-def]
        """Turn publisher confirms on; returns a Deferred."""

    def tx_select():  # type: ignore[no-untyped-def]
        """Put the channel in transaction mode; a Deferred fires on C{Tx.SelectOk}."""

    def tx_commit():  # type: ignore[no-untyped-def]
        """Commit what was sent since the last commit; fires on C{Tx.CommitOk}."""

    def basic_consume(  # type: ignore[no-untyped-def]
        queue, auto_ack=False, exclusive=False, consumer_tag=None, arguments=None
    ):
        """Start a consumer; the Deferred fires with C{(queue, consumer_tag)}."""

    def basic_cancel(consumer_tag=""):  # type: ignore[no-untyped-def]
        """Cancel a consumer; returns a Deferred."""

    def basic_get(queue, auto_ack=False):  # type: ignore[no-untyped-def]
        """Take one message; the Deferred fires with it, or with C{None} if there is none."""

    def basic_publish(exchange, routing_key, body, properties=None, mandatory=False):  # type: ignore[no-untyped-def]
        """Publish; with confirms on, the Deferred fires when the broker confirms."""

    def basic_ack(delivery_tag=0, multiple=False):  # type: ignore[no-untyped-def]
        """Acknowledge a delivery (synchronous)."""

    def basic_nack(delivery_tag=0, multiple=False, requeue=True):  # type: ignore[no-untyped-def]
        """Reject a delivery, requeued or dead-lettered (synchronous)."""

    def add_on_return_callback(callback):  # type: ignore[no-untyped-def]
        """Be told of returned (unroutable mandatory) messages."""

    def close(reply_code=0, reply_text="Normal shutdown"):  # type: ignore[no-untyped-def]
        """Close the channel from the client side."""


class IAMQPConnection(Interface):
    """
    An open AMQP connection as pika's C{TwistedProtocolConnection} presents
    it once ready: channels are opened with L{channel}; L{close} closes it.
    """

    is_open = Attribute("Whether the connection is open.")
    is_closed = Attribute("Whether the connection is closed.")

    def channel(channel_number=None):  # type: ignore[no-untyped-def]
        """
        Open a channel; the Deferred fires with an L{IChannel} provider.
        Raises C{ConnectionWrongStateError} on a closed connection.
        """

    def close(reply_code=200, reply_text="Normal shutdown"):  # type: ignore[no-untyped-def]
        """Close the connection from the client side."""
