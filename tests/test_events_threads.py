# -*- test-case-name: tests.test_events_threads -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Blocking handlers on the real reactor and its real thread pool: they must
run off the reactor thread.
"""

import threading

from twisted.internet import reactor
from twisted.python.threadable import isInIOThread
from twisted.trial.unittest import TestCase

from txmsg.events import EventRegistry


class BlockingThreadTests(TestCase):
    """
    C{blocking=True} with the global reactor.
    """

    def test_off_reactor_thread(self):
        """
        A blocking handler runs in a worker thread, a plain one on the
        reactor thread, and the dispatch result has both values.
        """
        registry = EventRegistry(reactor)

        def where(event):
            return (isInIOThread(), threading.current_thread().name)

        registry.add("e", where, blocking=True)
        registry.add("e", where)
        d = registry.dispatch("e")

        def check(result):
            (blocking_io, blocking_thread), (plain_io, plain_thread) = result.values
            self.assertFalse(blocking_io)
            self.assertTrue(plain_io)
            self.assertNotEqual(blocking_thread, plain_thread)

        return d.addCallback(check)
