#!/usr/bin/env python
"""Seed S16 rpc_server.py (pika 1.x port)."""

import pika
from _seed import connect, count, name, out

connection = connect()
channel = connection.channel()
channel.queue_declare(queue=name("rpc_queue"))


def fib(n):
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fib(n - 1) + fib(n - 2)


seen = []


def on_request(ch, method, props, body):
    n = int(body)
    out(" [.] fib(%s)" % n)
    response = fib(n)
    ch.basic_publish(
        exchange="",
        routing_key=props.reply_to,
        properties=pika.BasicProperties(correlation_id=props.correlation_id),
        body=str(response),
    )
    ch.basic_ack(delivery_tag=method.delivery_tag)
    seen.append(n)
    if len(seen) == count():
        ch.stop_consuming()


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue=name("rpc_queue"), on_message_callback=on_request)
out(" [x] Awaiting RPC requests")
channel.start_consuming()
connection.close()
