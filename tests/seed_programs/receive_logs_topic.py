#!/usr/bin/env python
"""Seed S15 receive_logs_topic.py (pika 1.x port)."""

import sys

from _seed import connect, count, name, out

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange=name("topic_logs"), exchange_type="topic")
result = channel.queue_declare(queue="", exclusive=True)
queue_name = result.method.queue
binding_keys = sys.argv[1:]
if not binding_keys:
    sys.stderr.write("Usage: %s [binding_key]...\n" % sys.argv[0])
    sys.exit(1)
for binding_key in binding_keys:
    channel.queue_bind(exchange=name("topic_logs"), queue=queue_name, routing_key=binding_key)
out(" [*] Waiting for logs. To exit press CTRL+C")
seen = []


def callback(ch, method, properties, body):
    out(" [x] %r:%r" % (method.routing_key, body))
    seen.append(body)
    if len(seen) == count():
        ch.stop_consuming()


channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
channel.start_consuming()
connection.close()
