#!/usr/bin/env python
"""Seed S12 receive.py (pika 1.x port)."""

from _seed import connect, count, name, out

connection = connect()
channel = connection.channel()
channel.queue_declare(queue=name("hello"))
seen = []


def callback(ch, method, properties, body):
    out(" [x] Received %r" % body)
    seen.append(body)
    if len(seen) == count():
        ch.stop_consuming()


channel.basic_consume(queue=name("hello"), on_message_callback=callback, auto_ack=True)
out(" [*] Waiting for messages. To exit press CTRL+C")
channel.start_consuming()
connection.close()
