#!/usr/bin/env python
"""Seed S15 receive_logs_direct.py (pika 1.x port)."""

import sys

from _seed import connect, count, name, out

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange=name("direct_logs"), exchange_type="direct")
result = channel.queue_declare(queue="", exclusive=True)
queue_name = result.method.queue
severities = sys.argv[1:]
if not severities:
    sys.stderr.write("Usage: %s [info] [warning] [error]\n" % sys.argv[0])
    sys.exit(1)
for severity in severities:
    channel.queue_bind(exchange=name("direct_logs"), queue=queue_name, routing_key=severity)
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
