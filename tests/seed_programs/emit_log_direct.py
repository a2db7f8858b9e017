#!/usr/bin/env python
"""Seed S15 emit_log_direct.py (pika 1.x port)."""

import sys

from _seed import connect, name, out

connection = connect()
channel = connection.channel()
channel.exchange_declare(exchange=name("direct_logs"), exchange_type="direct")
severity = sys.argv[1] if len(sys.argv) > 1 else "info"
message = " ".join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(exchange=name("direct_logs"), routing_key=severity, body=message)
out(" [x] Sent %r:%r" % (severity, message))
connection.close()
