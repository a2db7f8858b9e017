#!/usr/bin/env python
"""Seed S13 worker.py (pika 1.x port)."""

import time

from _seed import connect, count, name, out

connection = connect()
channel = connection.channel()
channel.queue_declare(queue=name("task_queue"), durable=True)
out(" [*] Waiting for messages. To exit press CTRL+C")
seen = []


def callback(ch, method, properties, body):
    out(" [x] Received %r" % body)
    time.sleep(body.count(b"."))
    out(" [x] Done")
    ch.basic_ack(delivery_tag=method.delivery_tag)
    seen.append(body)
    if len(seen) == count():
        ch.stop_consuming()


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue=name("task_queue"), on_message_callback=callback)
channel.start_consuming()
connection.close()
