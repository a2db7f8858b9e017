# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Fault tests against real RabbitMQ: a broker-forced connection close (shared
node, our connections only, found by their client-provided names), a broker
application restart (a private node: never the shared one), and a consumer
killed with SIGKILL mid-handler.

Invariant checked: every message whose publish was confirmed is consumed;
none is lost.  Duplicates are allowed (at-least-once) and are counted and
reported.
"""

import sys

from twisted.application.internet import backoffPolicy
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests._amqp_support import (
    SHARED_URL,
    PrivateBroker,
    Proc,
    cleanup,
    close_connections_named,
    env,
    require_broker,
    unique,
)
from txmsg.amqp import AMQPConnection, PublishError, Queue
from txmsg.testing import RecordingEvents


class _Workload:
    """Publish N numbered messages reliably while a consumer records them."""

    def __init__(self, url, queue_name, n=600, interval=0.01):
        self.n = n
        self.interval = interval
        self.queue = Queue(queue_name, durable=True)
        self.events = RecordingEvents()
        policy = backoffPolicy(initialDelay=0.2, maxDelay=1.0)
        self.pub_name = unique("txmsg-fault-pub")
        self.con_name = unique("txmsg-fault-con")
        self.pub = AMQPConnection(
            url,
            reactor=reactor,
            connection_name=self.pub_name,
            retry_policy=policy,
            events=self.events,
        )
        self.con = AMQPConnection(
            url,
            reactor=reactor,
            connection_name=self.con_name,
            retry_policy=policy,
            events=self.events,
        )
        self.pub.declare(self.queue)
        self.confirmed = set()
        self.seen = []
        self.retries = 0
        self.published = 0
        self.faults_done = False

    def start(self):
        self.pub.startService()
        self.con.startService()
        self.con.consume(self.queue, self._handle, prefetch=10)

    def _handle(self, delivery):
        self.seen.append(int(delivery.body))

    async def _publish_one(self, i):
        while True:
            try:
                await self.pub.publish("", self.queue.name, str(i), timeout=15)
                self.confirmed.add(i)
                return
            except PublishError:
                self.retries += 1
                await deferLater(reactor, 0.1)

    async def publish_all(self):
        """Publish at least n messages, and go on until the faults are over."""
        ds = []
        i = 0
        while i < self.n or not self.faults_done:
            ds.append(Deferred.fromCoroutine(self._publish_one(i)))
            i += 1
            await deferLater(reactor, self.interval)
        self.published = i
        await gatherResults(ds)

    async def wait_all_seen(self, timeout=60):
        deadline = reactor.seconds() + timeout
        while not self.confirmed <= set(self.seen):
            if reactor.seconds() > deadline:
                raise AssertionError(
                    "only {} of {} confirmed messages consumed".format(
                        len(self.confirmed & set(self.seen)), len(self.confirmed)
                    )
                )
            await deferLater(reactor, 0.1)

    async def stop(self):
        self.n, self.faults_done = 0, True  # ends publish_all's loop
        if self.con.running:
            await self.con.stopService()
        if self.pub.running:
            await self.pub.stopService()

    def report(self, test):
        dups = len(self.seen) - len(set(self.seen))
        lost = self.confirmed - set(self.seen)
        sys.stderr.write(
            "\n  [{}] published={} confirmed={} consumed={} duplicates={} lost={} "
            "publish-retries={} connects={} losses={}\n".format(
                test,
                self.published,
                len(self.confirmed),
                len(set(self.seen)),
                dups,
                len(lost),
                self.retries,
                len(self.events.named("amqp.connected")),
                len(self.events.named("amqp.lost")),
            )
        )
        return lost, dups


class ForcedCloseTests(TestCase):
    """Broker-forced close of our connections on the shared node."""

    timeout = 120

    async def test_forced_close_loses_nothing(self):
        """Closing both connections mid-run: every confirmed message is consumed."""
        require_broker()
        w = _Workload(SHARED_URL, unique("txmsg-fault-close"))
        self.addCleanup(cleanup, queues=[w.queue.name])
        w.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(w.stop()))
        publishing = Deferred.fromCoroutine(w.publish_all())
        await deferLater(reactor, 1.0)
        try:
            closed = await deferToThread(close_connections_named, w.pub_name, "txmsg fault test")
            closed += await deferToThread(close_connections_named, w.con_name, "txmsg fault test")
            await deferLater(reactor, 2.0)  # publish and consume on new connections
        finally:
            w.faults_done = True
        self.assertEqual(closed, 2)
        await publishing
        await w.wait_all_seen()
        await w.stop()
        lost, dups = w.report("forced close")
        self.assertEqual(lost, set())
        self.assertEqual(w.confirmed, set(range(w.published)))
        forced = [
            p["connection_name"] for p in w.events.named("amqp.lost") if p["reply_code"] == 320
        ]
        self.assertEqual(
            sorted(forced),
            sorted([w.pub_name, w.con_name]),
            "the real close reason (320 CONNECTION_FORCED) is reported",
        )
        connects = [p["connection_name"] for p in w.events.named("amqp.connected")]
        self.assertEqual((connects.count(w.pub_name), connects.count(w.con_name)), (2, 2))


class BrokerRestartTests(TestCase):
    """stop_app / start_app on a private RabbitMQ node."""

    timeout = 240

    async def test_restart_loses_nothing(self):
        """Restarting the broker app mid-run: every confirmed message is consumed."""
        broker = PrivateBroker()
        self.addCleanup(broker.stop)
        await deferToThread(broker.start)
        w = _Workload(broker.url, unique("txmsg-fault-restart"))
        w.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(w.stop()))
        publishing = Deferred.fromCoroutine(w.publish_all())
        await deferLater(reactor, 1.0)
        try:
            await deferToThread(broker.ctl, "stop_app")
            await deferLater(reactor, 1.0)
            await deferToThread(broker.ctl, "start_app")
            await deferLater(reactor, 2.0)  # publish and consume on new connections
        finally:
            w.faults_done = True
        await publishing
        await w.wait_all_seen()
        await w.stop()
        lost, dups = w.report("stop_app/start_app")
        self.assertEqual(lost, set())
        self.assertEqual(w.confirmed, set(range(w.published)))
        connects = [p["connection_name"] for p in w.events.named("amqp.connected")]
        self.assertGreaterEqual(connects.count(w.pub_name), 2)
        self.assertGreaterEqual(connects.count(w.con_name), 2)


class KilledConsumerTests(TestCase):
    """A consumer process killed with SIGKILL mid-handler."""

    timeout = 60

    async def test_sigkill_mid_handler_redelivers(self):
        """Deliveries held by a SIGKILLed consumer are redelivered to another consumer."""
        require_broker()
        name = unique("txmsg-fault-kill")
        self.addCleanup(cleanup, queues=[name])
        conn = AMQPConnection(SHARED_URL, reactor=reactor, connection_name=name)
        conn.declare(Queue(name, durable=True))
        conn.startService()
        self.addCleanup(conn.stopService)
        await conn.when_ready(10)
        for i in range(5):
            await conn.publish("", name, str(i))
        stuck = Proc(["tests/_amqp_stuck_consumer.py", name, "3"], env())
        self.addCleanup(stuck.kill)
        await deferToThread(stuck.wait_for, "got 2")
        stuck.kill(9)
        got = []
        done = Deferred()

        def handler(delivery):
            got.append((int(delivery.body), delivery.redelivered))
            if len(got) == 5:
                done.callback(None)

        conn.consume(name, handler, prefetch=10)
        timer = reactor.callLater(20, lambda: done.called or done.errback(AssertionError(got)))
        await done
        timer.cancel()
        self.assertEqual(sorted(b for b, _ in got), [0, 1, 2, 3, 4])
        self.assertEqual(sorted(b for b, r in got if r), [0, 1, 2])
