# -*- test-case-name: txmsg.test.test_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Warnings that a peer can trigger at will are rate-limited by count.
"""

__all__ = ["should_log"]


def should_log(count: int) -> bool:
    """
    Whether the C{count}-th occurrence of a repeated warning is logged: the
    first ten, then one in a thousand, so that a bad peer cannot flood the log.
    """
    return count <= 10 or count % 1000 == 0
