# -*- test-case-name: txmsg.test.test_helpers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Capture what is logged to the global log publisher during one test.
"""

from __future__ import annotations

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

__all__ = ["captured_global_logs"]


def captured_global_logs(case: SynchronousTestCase) -> EventLoggingObserver:
    """
    Observe the global log publisher until C{case} ends.

    @return: the observer; it is a sequence of the events logged.
    """
    observer = EventLoggingObserver()
    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return observer
