# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the fakes of L{txmsg.testing}: each provides the interface of the
real thing it stands in for, and the real thing provides it too.
"""

from __future__ import annotations

from typing import Any

from pika.adapters.twisted_connection import TwistedChannel, TwistedProtocolConnection
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from txmsg.amqp.interfaces import IAMQPConnection, IChannel
from txmsg.events import EventRegistry, IEventSink, IThreadPool
from txmsg.testing import MemoryBroker, RecordingEvents, SyncThreadPool


class InterfaceTests(SynchronousTestCase):
    """
    The fakes declare and provide the interfaces of what they fake; the
    real implementations provide the same interfaces.
    """

    def test_memory_channel(self) -> None:
        """
        A channel of the memory broker provides L{IChannel}, and so does
        pika's C{TwistedChannel} (whose methods the interface describes).
        """
        broker = MemoryBroker(Clock())
        conn = broker.connection()
        conn.startService()
        broker.flush()
        protocol = broker.connections[0]
        self.assertTrue(verifyObject(IAMQPConnection, protocol))
        channel = self.successResultOf(protocol.channel())
        self.assertTrue(verifyObject(IChannel, channel))
        self.assertTrue(verifyClass(IChannel, TwistedChannel, tentative=True))
        self.assertTrue(verifyClass(IAMQPConnection, TwistedProtocolConnection, tentative=True))
        conn.stopService()
        broker.flush()

    def test_recording_events(self) -> None:
        """
        L{RecordingEvents} provides L{IEventSink}, like L{EventRegistry}.
        """
        self.assertTrue(verifyObject(IEventSink, RecordingEvents()))
        self.assertTrue(verifyObject(IEventSink, EventRegistry(reactor=Clock())))

    def test_sync_thread_pool(self) -> None:
        """
        L{SyncThreadPool} provides L{IThreadPool}, like Twisted's L{ThreadPool}.
        """
        self.assertTrue(verifyObject(IThreadPool, SyncThreadPool()))
        self.assertTrue(verifyClass(IThreadPool, ThreadPool, tentative=True))


class RecordingEventsTests(SynchronousTestCase):
    """
    Tests for L{RecordingEvents}.
    """

    def test_records(self) -> None:
        """
        Every dispatch is recorded as C{(name, payload, source)}, and has
        already fired; L{RecordingEvents.names} and L{RecordingEvents.named}
        read them back.
        """
        events = RecordingEvents()
        self.assertIsNone(self.successResultOf(events.dispatch("a", 1, source="s")))
        events.dispatch("b")
        events.dispatch("a", 2, metadata={"k": "v"})
        self.assertEqual(events.events, [("a", 1, "s"), ("b", None, None), ("a", 2, None)])
        self.assertEqual(events.names(), ["a", "b", "a"])
        self.assertEqual(events.named("a"), [1, 2])


class SyncThreadPoolTests(SynchronousTestCase):
    """
    Tests for L{SyncThreadPool}.
    """

    def test_runs_at_once(self) -> None:
        """
        By default work runs at once and its result, or failure, is
        reported as Twisted's thread pool reports it.
        """
        pool = SyncThreadPool()
        results: list[tuple[bool, Any]] = []
        pool.callInThreadWithCallback(lambda ok, r: results.append((ok, r)), lambda x: x * 2, 21)
        pool.callInThreadWithCallback(lambda ok, r: results.append((ok, r)), lambda: 1 // 0)
        self.assertEqual(results[0], (True, 42))
        self.assertFalse(results[1][0])
        self.assertTrue(results[1][1].check(ZeroDivisionError))
        self.assertEqual(pool.work, [])

    def test_hold(self) -> None:
        """
        With C{hold=True}, work (C{callInThread} too) waits for C{run_all},
        which runs it in order.
        """
        pool = SyncThreadPool(hold=True)
        seen: list[object] = []
        pool.callInThreadWithCallback(lambda ok, r: seen.append(("result", r)), lambda: "x")
        pool.callInThread(seen.append, "plain")
        self.assertEqual(seen, [])
        self.assertEqual(len(pool.work), 2)
        pool.run_all()
        self.assertEqual(seen, [("result", "x"), "plain"])
        self.assertEqual(pool.work, [])
