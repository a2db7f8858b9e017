#!/usr/bin/env python
"""Seed S14 emit_log.py (pika 1.x port)."""

import sys

from _seed import connect, name, out

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange=name("logs"), exchange_type="fanout")
message = " ".join(sys.argv[1:]) or "info: Hello World!"
channel.basic_publish(exchange=name("logs"), routing_key="", body=message)
out(" [x] Sent %r" % message)
connection.close()
