# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Seed S5 on txmsg: the RedisHelper publisher/subscriber, non-blocking.

The seed (course notes, seed 001/000) had a blocking RedisHelper:
``public(msg)`` published on channel "fm104.5" and ``subscribe()`` returned a
pubsub object that a ``while True: parse_response()`` loop (or
``run_in_thread`` callbacks) read from.  Here the subscriber is a callback on
the reactor, it survives Redis restarts, and the same process can publish.

    python examples/redis_pubsub.py             # demo: subscribe, publish 3, exit
    python examples/redis_pubsub.py sub            # print messages until Ctrl-C
    python examples/redis_pubsub.py pub hello      # publish one message

Options: --channel NAME (default fm104.5).  Redis: $TXMSG_REDIS_URL or
redis://127.0.0.1:6379/0.
"""

import argparse

from twisted.internet import defer, task

from txmsg.redis import Message, RedisService, Subscription


class RedisHelper:
    """
    The seed's helper: one channel to publish on, one to subscribe to.
    """

    def __init__(self, redis: RedisService, channel: str = "fm104.5") -> None:
        self.redis = redis
        self.chan_sub = channel
        self.chan_pub = channel

    def public(self, msg: str) -> defer.Deferred:
        """
        Publish C{msg}; fires with the number of subscribers that got it.
        """
        return self.redis.publish(self.chan_pub, msg)

    def subscribe(self, callback) -> Subscription:
        """
        Call C{callback(message)} for every message (text) on the channel.
        """
        return self.redis.subscribe(self.chan_sub, callback, decode="text")


async def main(reactor, mode: str, channel: str, words: list) -> None:
    redis = RedisService(reactor=reactor)
    redis.startService()
    helper = RedisHelper(redis, channel)
    try:
        await redis.when_connected(timeout=10)
        if mode == "pub":
            n = await helper.public(" ".join(words) or "hello")
            print(f"published to {n} subscriber(s)")
            return
        got: list = []
        done = defer.Deferred()

        def on_message(message: Message) -> None:
            print(f"received on {message.channel}: {message.data}", flush=True)
            got.append(message.data)
            if mode == "demo" and len(got) == 3:
                done.callback(None)

        sub = helper.subscribe(on_message)
        await sub.when_active()
        print(f"subscribed to {channel}", flush=True)
        if mode == "sub":
            await defer.Deferred()  # until Ctrl-C
        for word in ("hello", "from", "txmsg"):
            await helper.public(word)
        await done.addTimeout(10, reactor)
        print("done: {}".format(" ".join(got)))
    finally:
        await redis.stopService()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="RedisHelper publisher/subscriber on txmsg")
    p.add_argument("mode", nargs="?", default="demo", choices=["demo", "sub", "pub"])
    p.add_argument("words", nargs="*")
    p.add_argument("--channel", default="fm104.5")
    # intermixed: "pub --channel X hello" (an option between the positionals)
    a = p.parse_intermixed_args()
    task.react(lambda r: defer.Deferred.fromCoroutine(main(r, a.mode, a.channel, a.words)))
