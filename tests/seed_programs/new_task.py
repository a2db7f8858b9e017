#!/usr/bin/env python
"""Seed S13 new_task.py (pika 1.x port)."""

import sys

import pika
from _seed import connect, name, out

connection = connect()
channel = connection.channel()
channel.queue_declare(queue=name("task_queue"), durable=True)
message = " ".join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange="",
    routing_key=name("task_queue"),
    body=message,
    properties=pika.BasicProperties(delivery_mode=2),  # make message persistent
)
out(" [x] Sent %r" % message)
connection.close()
