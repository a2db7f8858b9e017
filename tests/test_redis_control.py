# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests: the worker control channel with RQ's own functions and
the control CLI, against the shared Redis.
"""

from __future__ import annotations

import io
import json
import sys
import uuid

from rq.command import send_command, send_kill_horse_command, send_shutdown_command
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests._redis_support import (
    SHARED_URL,
    redis_py,
    run_python,
    subprocess_env,
    wait_for,
)
from txmsg.redis import RedisService
from txmsg.redis.control_cli import Options, run


class ControlChannelTests(TestCase):
    """
    RQ and the txmsg CLI talking to a L{ControlListener}.
    """

    timeout = 60

    def setUp(self) -> None:
        self.peer = redis_py()
        self.redis = RedisService(SHARED_URL)
        self.redis.startService()
        self.addCleanup(self.redis.stopService)
        self.name = "txmsg-test-" + uuid.uuid4().hex[:12]
        self.seen: list = []
        self.listener = self.redis.control_listener(
            self.name,
            {
                "shutdown": self.seen.append,
                "kill-horse": self.seen.append,
                "stop-job": self.seen.append,
            },
            status=lambda: {"state": "idle"},
        )

    async def test_rq_send_shutdown_command(self) -> None:
        """
        RQ's own send_shutdown_command, send_kill_horse_command and
        send_command('stop-job') reach the owner's handlers.
        """
        await self.listener.when_active()
        send_shutdown_command(self.peer, self.name)
        send_kill_horse_command(self.peer, self.name)
        send_command(self.peer, self.name, "stop-job", job_id="job-1")
        await wait_for(lambda: len(self.seen) == 3)
        self.assertEqual([c.command for c in self.seen], ["shutdown", "kill-horse", "stop-job"])
        self.assertEqual(self.seen[2].args["job_id"], "job-1")

    async def test_cli_ping_in_process(self) -> None:
        """
        The control CLI's run() prints the ping reply and returns 0.
        """
        await self.listener.when_active()
        o = Options()
        o.parseOptions(["--redis", SHARED_URL, self.name, "ping"])
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.assertEqual(await run(reactor, o), 0)
        self.assertEqual(json.loads(out.getvalue())["result"]["name"], self.name)

    async def test_cli_subprocess_round_trip(self) -> None:
        """
        `python -m txmsg.redis.control_cli NAME ping` prints the JSON reply
        and exits 0; `status` returns the status; `shutdown` reaches the
        handler; a ping to a worker nobody runs exits 1 with a message.
        """
        await self.listener.when_active()
        env = subprocess_env(TXMSG_REDIS_URL=SHARED_URL)
        out, err, code = await run_python(["-m", "txmsg.redis.control_cli", self.name, "ping"], env)
        self.assertEqual(code, 0, err)
        reply = json.loads(out)
        self.assertEqual((reply["ok"], reply["result"]["name"]), (True, self.name))
        out, err, code = await run_python(
            ["-m", "txmsg.redis.control_cli", self.name, "status"], env
        )
        self.assertEqual(json.loads(out)["result"], {"state": "idle"})
        out, err, code = await run_python(
            ["-m", "txmsg.redis.control_cli", self.name, "shutdown"], env
        )
        self.assertEqual(code, 0, err)
        await wait_for(lambda: self.seen)
        out, err, code = await run_python(
            ["-m", "txmsg.redis.control_cli", "-t", "1", self.name + "-nobody", "ping"],
            env,
        )
        self.assertEqual(code, 1)
        self.assertIn(b"nobody is listening", err)
