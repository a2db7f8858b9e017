#!/usr/bin/env python
"""Seed S12 send.py (pika 1.x port)."""

from _seed import connect, name, out

connection = connect()
channel = connection.channel()
channel.queue_declare(queue=name("hello"))
channel.basic_publish(exchange="", routing_key=name("hello"), body="Hello World!")
out(" [x] Sent 'Hello World!'")
connection.close()
