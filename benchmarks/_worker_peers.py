# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The peer workers of C{benchmarks/worker.py}, each run as its own process:

  - C{blocking_worker}: pika C{BlockingConnection}, reply (optionally
    confirmed) then ack;
  - C{raw_worker}: the broker's ceiling through pika's Twisted adapter:
    consume + ack, or consume + confirmed publish of the body to
    C{reply_to} + ack after the confirm; no JSON, no task lookup; with
    C{tx}, the publish and the ack in one AMQP transaction per reactor turn
    instead (the mechanism of txmsg's worker with --transactions);
  - Celery 5 and Dramatiq (optional: C{requirements-bench.txt}): a no-op
    task on the queue named by C{$TXMSG_BENCH_QUEUE}, with C{celery_app} /
    C{dramatiq_noop} defined only when the package imports.

The settings of each are in L{PEER_SETTINGS}, printed by the benchmark.
"""

import json
import os
import signal

import pika

URL = os.environ.get("TXMSG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUE = os.environ.get("TXMSG_BENCH_QUEUE", "txmsg-bench-peer")
PREFETCH = int(os.environ.get("TXMSG_BENCH_PREFETCH", "100"))

PEER_SETTINGS = {
    "celery": "Celery {version}: -P solo -c 1, prefetch multiplier {prefetch}, "
    "acks_late (ack after the task, as txmsg), no result backend, "
    "--without-gossip/mingle/heartbeat, log level WARNING",
    "dramatiq": "Dramatiq {version}: RabbitmqBroker, -p 1 -t 4, "
    "dramatiq_queue_prefetch={prefetch}, default middleware (acks after the task)",
}


def blocking_worker(queue, prefetch, confirms=False):
    """
    Consume v1 tasks from C{queue} with pika's BlockingConnection: run, reply,
    ack.  Stops on SIGTERM.  With C{confirms}, each reply waits for its
    publisher confirm before the ack (txmsg's worker's guarantee).
    """
    tasks = {"noop": lambda: None}
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    if confirms:
        channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    channel.basic_qos(prefetch_count=prefetch)

    def on_message(ch, method, props, body):
        task = json.loads(body)
        result = tasks[task["task"]](*task.get("args", []), **task.get("kwargs", {}))
        if props.reply_to:
            reply = json.dumps({"id": task["id"], "status": "ok", "result": result})
            ch.basic_publish(
                "",
                props.reply_to,
                reply,
                pika.BasicProperties(
                    correlation_id=props.correlation_id, content_type="application/json"
                ),
            )
        ch.basic_ack(method.delivery_tag)

    def stop(signum, frame):
        channel.stop_consuming()

    signal.signal(signal.SIGTERM, stop)
    channel.basic_consume(queue, on_message)
    print("blocking worker consuming", flush=True)
    channel.start_consuming()
    connection.close()


def raw_worker(queue, prefetch, publish=False, tx=False):
    """
    The ceiling: pika's Twisted adapter consuming C{queue} at C{prefetch};
    each delivery is acked at once or, with C{publish}, after the confirm
    of its body published to its C{reply_to} (on a second channel).  With
    C{tx}, the consuming channel is transactional: the replies and acks of
    one reactor turn are sent and committed together, one commit at a time.
    Stops on SIGTERM.
    """
    from pika.adapters.twisted_connection import TwistedProtocolConnection
    from twisted.internet import defer, protocol, reactor

    params = pika.URLParameters(URL)

    async def run():
        creator = protocol.ClientCreator(reactor, TwistedProtocolConnection, params)
        connection = await creator.connectTCP(params.host, params.port)
        await connection.ready
        channel = await connection.channel()
        replies = None
        if tx:
            await channel.tx_select()
        elif publish:
            replies = await connection.channel()
            await replies.confirm_delivery()
        await channel.basic_qos(prefetch_count=prefetch)
        deliveries, _ = await channel.basic_consume(queue, auto_ack=False)
        print("raw worker consuming", flush=True)

        waiting = []  # (props, body, tag) for the next commit
        committing = []  # the commit in flight, if any

        def commit():
            if committing or not waiting:
                return
            for props, body, tag in waiting:
                if props.reply_to:
                    channel.basic_publish(
                        "",
                        props.reply_to,
                        body,
                        pika.BasicProperties(correlation_id=props.correlation_id),
                    )
                channel.basic_ack(tag)
            del waiting[:]
            committing.append(channel.tx_commit().addCallback(committed))

        def committed(_):
            del committing[:]
            commit()

        def handle(item):
            _, method, props, body = item
            if tx:
                waiting.append((props, body, method.delivery_tag))
                if len(waiting) == 1 and not committing:
                    reactor.callLater(0, commit)
            elif replies is not None and props.reply_to:
                d = replies.basic_publish(
                    "",
                    props.reply_to,
                    body,
                    pika.BasicProperties(correlation_id=props.correlation_id),
                )
                d.addCallback(lambda _, tag=method.delivery_tag: channel.basic_ack(tag))
            else:
                channel.basic_ack(method.delivery_tag)

        def pump(_=None):
            while True:  # a loop, not recursion: buffered deliveries fire at once
                d = deliveries.get()
                d.addCallback(handle)
                if not d.called:
                    d.addCallback(pump)
                    return

        pump()

    defer.ensureDeferred(run()).addErrback(lambda f: (f.printTraceback(), reactor.stop()))
    reactor.run()


# -- Celery and Dramatiq: defined only when installed ------------------------------

try:
    import celery
except ImportError:
    celery = None
    celery_app = None
else:
    celery_app = celery.Celery("txmsg_bench", broker=URL)
    celery_app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,
        worker_prefetch_multiplier=PREFETCH,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    @celery_app.task(name="noop")
    def celery_noop():
        return None


try:
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
except ImportError:
    dramatiq = None
    dramatiq_noop = None
else:
    dramatiq.set_broker(RabbitmqBroker(url=URL))

    @dramatiq.actor(queue_name=QUEUE, actor_name="noop")
    def dramatiq_noop():
        return None


def fill_peer(kind, n):
    """
    Submit C{n} no-op tasks for the peer C{kind} (C{celery}, C{dramatiq}) to
    L{QUEUE}, in its own message format.
    """
    if kind == "celery":
        with celery_app.producer_or_acquire() as producer:
            for _ in range(n):
                celery_noop.apply_async(producer=producer)
    else:
        for _ in range(n):
            dramatiq_noop.send()


def peer_version(kind):
    """The version of peer C{kind}, or L{None} when it is not installed."""
    module = {"celery": celery, "dramatiq": dramatiq}[kind]
    return None if module is None else module.__version__
