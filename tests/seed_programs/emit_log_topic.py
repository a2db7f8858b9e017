#!/usr/bin/env python
"""Seed S15 emit_log_topic.py (pika 1.x port)."""

import sys

from _seed import connect, name, out

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange=name("topic_logs"), exchange_type="topic")
routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
message = " ".join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(exchange=name("topic_logs"), routing_key=routing_key, body=message)
out(" [x] Sent %r:%r" % (routing_key, message))
connection.close()
