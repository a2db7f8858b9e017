# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The in-memory Redis of L{txmsg.testing} runs txmsg's real Lua scripts in an
embedded Lua whose C{redis.call} runs its own commands.  These tests run
every script on the real Redis and on L{MemoryRedis} from the same state with
the same arguments, and require the same reply and the same resulting keys:
a script using a command (or an option, or a reply shape) that the in-memory
commands get wrong fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests._redis_support import redis_py
from txmsg.redis import _delay_scripts as ds
from txmsg.redis import _list_scripts as ls
from txmsg.redis import lock as lock_module
from txmsg.redis._common import Script
from txmsg.schedule import leader as leader_module
from txmsg.test._optional import skip_unless_importable
from txmsg.testing import MemoryRedis
from txmsg.worker import results as rs
from txmsg.worker import workflow_store as wf

# Every script of txmsg's Redis primitives; a new one must get a scenario below.
SCRIPTS = [
    lock_module.RELEASE_IF_HELD,
    lock_module._EXTEND,
    ds.SCHEDULE,
    ds.CLAIM,
    ds.SETTLE,
    ds.DEAD,
    ds.MOVE,
    ls.RECOVER,
    ls.FAIL,
    ls.REQUEUE,
    leader_module._ACQUIRE,
    leader_module._COVER,
    rs.RECORD,
    rs.REVOKE,
    wf.DONE,
]


def _text(value: Any) -> Any:
    """A reply with bytes decoded, so both sides compare equal."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    """
    Field/value (or member/score) pairs from a flat reply, or from the dict
    or list of tuples that redis-py makes of it.
    """
    if isinstance(reply, dict):
        return sorted((_text(k), _text(v)) for k, v in reply.items())
    if reply and isinstance(reply[0], (tuple, list)):
        return [(_text(a), _text(b)) for a, b in reply]
    return list(zip(reply[::2], reply[1::2], strict=True))


class _Side:
    """Runs commands and scripts on one Redis (real or in memory), synchronously."""

    def __init__(self, run: Callable[..., Any]) -> None:
        self._run = run

    def cmd(self, *args: Any) -> Any:
        return _text(self._run(*args))

    def script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        return self.cmd("EVAL", script.source, len(keys), *keys, *args)

    def state(self, keys: dict[str, str]) -> dict[str, Any]:
        """Each key's contents, read as its kind says (and whether it has a TTL)."""
        out: dict[str, Any] = {}
        for key, kind in keys.items():
            if kind == "string":
                value: Any = self.cmd("GET", key)
            elif kind == "list":
                value = self.cmd("LRANGE", key, 0, -1)
            elif kind == "hash":
                value = _pairs(self.cmd("HGETALL", key))
            elif kind == "zset":
                value = [
                    (m, float(s)) for m, s in _pairs(self.cmd("ZRANGE", key, 0, -1, "WITHSCORES"))
                ]
            else:
                value = sorted(self.cmd("SMEMBERS", key))
            out[key] = (value, self.cmd("PTTL", key) > 0)
        return out


@skip_unless_importable("lupa", extra="testing")
class ScriptParityTests(SynchronousTestCase):
    """
    Every Lua script gives the same reply and leaves the same keys on the
    real Redis and on L{MemoryRedis}.
    """

    def setUp(self) -> None:
        self.peer = redis_py()
        self.ns = "txmsg-script-parity:" + uuid.uuid4().hex + ":"
        self.addCleanup(self._clean)
        fake = MemoryRedis()

        def on_fake(*args: Any) -> Any:
            return self.successResultOf(fake.execute_command(*args))

        self.real = _Side(self.peer.execute_command)
        self.memory = _Side(on_fake)
        self.covered: set[str] = set()

    def _clean(self) -> None:
        keys = self.peer.keys(self.ns + "*")
        if keys:
            self.peer.delete(*keys)
        self.peer.close()

    def k(self, **kinds: str) -> dict[str, str]:
        """Namespaced key names (in the order given) -> their kinds."""
        return {self.ns + name: kind for name, kind in kinds.items()}

    def both(self, steps: list[tuple[Any, ...]], keys: dict[str, str]) -> None:
        """
        Run C{steps} (setup commands, or C{(Script, keys, args)}) on both
        sides; every script's reply and the final state of C{keys} must match.
        """
        for step in steps:
            if isinstance(step[0], Script):
                self.covered.add(step[0].name)
                replies = [side.script(*step) for side in (self.real, self.memory)]
                self.assertEqual(replies[0], replies[1], f"reply to {step!r}")
            else:
                for side in (self.real, self.memory):
                    side.cmd(*step)
        self.assertEqual(self.real.state(keys), self.memory.state(keys))

    def test_lock(self) -> None:
        """RELEASE and EXTEND, with the right and a wrong token."""
        keys = self.k(lock="string")
        (key,) = keys
        self.both(
            [
                ("SET", key, "t1", "PX", 10000),
                (lock_module._EXTEND, [key], ["other", 20000]),
                (lock_module._EXTEND, [key], ["t1", 20000]),
                (lock_module.RELEASE_IF_HELD, [key], ["other"]),
            ],
            keys,
        )
        self.both([(lock_module.RELEASE_IF_HELD, [key], ["t1"])], keys)
        self.assertEqual(self.covered, {"lock.release", "lock.extend"})

    def test_delay_queue(self) -> None:
        """SCHEDULE, CLAIM, SETTLE (acks and retries), DEAD and MOVE on one queue's keys."""
        keys = self.k(
            due="zset", processing="zset", items="hash", attempts="hash", dead="list", list="list"
        )
        due, processing, items, attempts, dead, target = keys
        self.both(
            [
                (ds.SCHEDULE, [due, items], ["a", 100, "pa", ""]),
                (ds.SCHEDULE, [due, items], ["b", 50, "pb", ""]),
                (ds.SCHEDULE, [due, items], ["c", 300, "pc", ""]),
                (ds.SCHEDULE, [due, items], ["d", 120, "pd", ""]),
                ("HDEL", items, "d"),
                (ds.CLAIM, [due, processing, items, attempts], [110, 0, 400]),
                (ds.CLAIM, [due, processing, items, attempts], [130, 10, 400]),
                (ds.SETTLE, [processing, due, items, attempts], ["a", "", "b", 200]),
                (ds.SETTLE, [processing, due, items, attempts], ["a", "", "b", 210, "x", 1]),
                (ds.CLAIM, [due, processing, items, attempts], [250, 10, 500]),
                (ds.DEAD, [processing, items, attempts, dead], ["b", '{"id": "b"}']),
                (ds.CLAIM, [due, processing, items, attempts], [600, 1, 700]),
                (ds.SETTLE, [processing, due, items, attempts], ["c", 800]),
                (ds.SCHEDULE, [due, items], ["e", 900, "pe", ""]),
                (ds.MOVE, [due, items, attempts, target], [850, 10]),
                (ds.MOVE, [due, items, attempts, target], [1000, 10]),
            ],
            keys,
        )
        self.assertEqual(
            self.covered,
            {
                "delay.schedule",
                "delay.claim",
                "delay.settle",
                "delay.dead",
                "delay.move",
            },
        )

    def test_list_queue(self) -> None:
        """RECOVER (alive, gone and forced), FAIL and REQUEUE."""
        keys = self.k(hb="string", processing="list", queue="list", consumers="set", dead="list")
        heartbeat, processing, queue, consumers, dead = keys
        self.both(
            [
                ("RPUSH", processing, "x", "y", "z"),
                ("SADD", consumers, "c1"),
                ("SET", heartbeat, "1", "PX", 10000),
                (ls.RECOVER, [heartbeat, processing, queue, consumers], ["c1", 10, "0"]),
                (ls.RECOVER, [heartbeat, processing, queue, consumers], ["c1", 2, "1"]),
                ("DEL", heartbeat),
                (ls.RECOVER, [heartbeat, processing, queue, consumers], ["c1", 10, "0"]),
                ("RPUSH", processing, "p", "q", "p"),
                (ls.FAIL, [processing, dead], ["p"]),
                (ls.REQUEUE, [processing, queue], ["q"]),
                (ls.FAIL, [processing, dead], ["missing"]),
            ],
            keys,
        )
        self.assertEqual(self.covered, {"list.recover", "list.fail", "list.requeue"})

    def test_scheduler_lease(self) -> None:
        """ACQUIRE (take, renew, refuse, take over) and COVER (fenced, monotonic)."""
        keys = self.k(leader="string", fence="string", covered="hash")
        leader, fence, covered = keys
        self.both(
            [
                (leader_module._ACQUIRE, [leader, fence], ["a", 10000]),
                (leader_module._ACQUIRE, [leader, fence], ["a", 20000]),
                (leader_module._ACQUIRE, [leader, fence], ["b", 10000]),
                (leader_module._COVER, [leader, covered], ["a|1", "e", "100.5"]),
                (leader_module._COVER, [leader, covered], ["a|1", "e", "99.0"]),
                (leader_module._COVER, [leader, covered], ["b|1", "e", "200.0"]),
                ("DEL", leader),
                (leader_module._ACQUIRE, [leader, fence], ["b", 10000]),
                (leader_module._COVER, [leader, covered], ["b|2", "f", "300.0"]),
            ],
            keys,
        )
        self.assertEqual(self.covered, {"schedule.acquire", "schedule.cover"})

    def test_result_store(self) -> None:
        """RECORD (allowed and refused transitions) and REVOKE (with trimming)."""
        keys = self.k(result="hash", revoked="zset")
        result, revoked = keys
        self.both(
            [
                (rs.RECORD, [result], ["started", "", 60, "attempts", "1"]),
                (rs.RECORD, [result], ["pending", "", 60, "task", "x"]),
                (rs.RECORD, [result], ["revoked", "none pending", 60, "task", "y"]),
                (rs.RECORD, [result], ["succeeded", "started", 60, "result", "[5]"]),
                (rs.RECORD, [result], ["started", "none pending started", 60]),
                (rs.REVOKE, [revoked], ["a", "100.5", "10"]),
                (rs.REVOKE, [revoked], ["b", "200", "150"]),
            ],
            keys,
        )
        self.assertEqual(self.covered, {"results.record", "results.revoke"})

    def test_workflow_done(self) -> None:
        """
        DONE: waiting, a member counted once, asked without a result,
        complete (to every later call), and failed.
        """
        keys = self.k(state="hash", stage="hash")
        state, stage = keys
        self.both(
            [
                (wf.DONE, [state, stage], ["1", "3", "10", 60]),
                (wf.DONE, [state, stage], ["1", "3", "11", 60]),
                (wf.DONE, [state, stage], ["0", "3", "", 60]),
                (wf.DONE, [state, stage], ["0", "3", '"a"', 60]),
                (wf.DONE, [state, stage], ["2", "3", "[1,2]", 60]),
                (wf.DONE, [state, stage], ["1", "3", "", 60]),
                ("HSET", state, "failed", "t1"),
                (wf.DONE, [state, stage], ["2", "3", "5", 60]),
            ],
            keys,
        )
        self.assertEqual(self.covered, {"workflows.done"})

    def test_every_script_has_a_scenario(self) -> None:
        """
        The scenarios above cover every L{Script} that txmsg's Redis
        primitives define.
        """
        defined = {
            value.name
            for module in (lock_module, ds, ls, leader_module, rs, wf)
            for value in vars(module).values()
            if isinstance(value, Script)
        }
        self.assertEqual(defined, {s.name for s in SCRIPTS})
