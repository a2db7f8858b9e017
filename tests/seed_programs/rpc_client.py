#!/usr/bin/env python
"""Seed S16 rpc_client.py (pika 1.x port)."""

import sys
import uuid

import pika
from _seed import connect, name, out


class FibonacciRpcClient:
    def __init__(self):
        self.connection = connect()
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(
            queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True
        )

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=name("rpc_queue"),
            properties=pika.BasicProperties(
                reply_to=self.callback_queue, correlation_id=self.corr_id
            ),
            body=str(n),
        )
        while self.response is None:
            self.connection.process_data_events(time_limit=1)
        return int(self.response)


fibonacci_rpc = FibonacciRpcClient()
n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
out(" [x] Requesting fib(%d)" % n)
response = fibonacci_rpc.call(n)
out(" [.] Got %r" % response)
