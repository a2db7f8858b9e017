# -*- test-case-name: txmsg.test.test_amqp_publisher -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Message properties for publishing: persistent by default.
"""

from __future__ import annotations

from typing import Any

from pika.spec import BasicProperties

__all__ = ["make_properties"]


def make_properties(
    properties: Any = None,
    *,
    headers: dict | None = None,
    content_type: str | None = None,
    persistent: bool = True,
    **fields: Any,
) -> Any:
    """
    Build C{pika.BasicProperties}: C{delivery_mode=2} when C{persistent}, plus
    C{headers}, C{content_type} and any other property C{fields}
    (C{correlation_id}, C{reply_to}, C{message_id}, C{expiration}, ...).

    @param properties: existing properties to start from (not modified).
    """
    if properties is None and not fields and headers is None and content_type is None:
        return BasicProperties(delivery_mode=2) if persistent else BasicProperties()
    if properties is None:
        props = BasicProperties()
    else:
        props = BasicProperties(**vars(properties))
    if persistent and props.delivery_mode is None:
        props.delivery_mode = 2
    if headers is not None:
        merged = dict(props.headers or {})
        merged.update(headers)
        props.headers = merged
    if content_type is not None:
        props.content_type = content_type
    for key, value in fields.items():
        if not hasattr(props, key):
            raise TypeError(f"unknown message property {key!r}")
        setattr(props, key, value)
    return props
