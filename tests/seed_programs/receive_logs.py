#!/usr/bin/env python
"""Seed S14 receive_logs.py (pika 1.x port)."""

from _seed import connect, count, name, out

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange=name("logs"), exchange_type="fanout")
result = channel.queue_declare(queue="", exclusive=True)
queue_name = result.method.queue
channel.queue_bind(exchange=name("logs"), queue=queue_name)
out(" [*] Waiting for logs. To exit press CTRL+C")
seen = []


def callback(ch, method, properties, body):
    out(" [x] %r" % body)
    seen.append(body)
    if len(seen) == count():
        ch.stop_consuming()


channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
channel.start_consuming()
connection.close()
