# -*- test-case-name: txmsg.test.test_redis_lua -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.testing._redis_lua}, the Lua scripting of the in-memory
Redis, and the store commands txmsg's scripts call.  The replies expected
here are the real Redis 7's (C{tests/test_redis_script_parity.py} compares
txmsg's own scripts on both).
"""

from __future__ import annotations

import hashlib
from typing import Any, NoReturn

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._optional import skip_unless_importable
from txmsg.testing import _redis_lua
from txmsg.testing._redis_lua import NEEDS_LUPA, LuaUnavailable
from txmsg.testing._redis_reply import ResponseError, Status
from txmsg.testing._redis_store import FakeRedis


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


class _Scripting(SynchronousTestCase):
    def setUp(self) -> None:
        self.redis = FakeRedis(Clock())

    def run_script(
        self, source: str, keys: tuple[Any, ...] = (), args: tuple[Any, ...] = ()
    ) -> Any:
        """The reply to C{EVAL source}, as the store makes it (not decoded)."""
        raw = [a if isinstance(a, bytes) else str(a).encode() for a in (*keys, *args)]
        return self.redis.scripts.eval(source.encode(), b"%d" % len(keys), *raw)

    def error_of(self, source: str, *keys: str) -> str:
        """The error reply to C{EVAL source}."""
        d = self.redis.execute_command("EVAL", source, len(keys), *keys)
        return str(self.failureResultOf(d, ResponseError).value)


@skip_unless_importable("lupa", extra="testing")
class LuaToRedisTests(_Scripting):
    """
    What a script returns becomes the reply Redis would make of it.
    """

    def test_number_is_a_truncated_integer(self) -> None:
        """A Lua number is an integer reply, truncated toward zero."""
        self.assertEqual(self.run_script("return 3.9"), 3)
        self.assertEqual(self.run_script("return -2.9"), -2)

    def test_string_is_bulk(self) -> None:
        """A Lua string is a bulk string, not a status."""
        reply = self.run_script("return 'OK'")
        self.assertEqual(reply, b"OK")
        self.assertNotIsInstance(reply, Status)

    def test_booleans_and_nil(self) -> None:
        """C{false} and C{nil} are a nil reply; C{true} is the integer 1."""
        self.assertIsNone(self.run_script("return false"))
        self.assertIsNone(self.run_script("return nil"))
        self.assertEqual(self.run_script("return true"), 1)

    def test_table_stops_at_first_nil(self) -> None:
        """
        A table is an array of its values from index 1 up to the first
        C{nil}; C{false} inside it is a nil element, nested tables nest.
        """
        reply = self.run_script("return {1, 'a', false, true, {2, 'b'}, nil, 3}")
        self.assertEqual(reply, [1, b"a", None, 1, [2, b"b"]])

    def test_ok_table_is_status(self) -> None:
        """C{{ok = s}} (and C{redis.status_reply(s)}) is the status reply C{s}."""
        for source in ("return {ok = 'FINE'}", "return redis.status_reply('FINE')"):
            reply = self.run_script(source)
            self.assertIsInstance(reply, Status)
            self.assertEqual(reply, b"FINE")

    def test_err_table_is_error(self) -> None:
        """C{{err = s}} (and C{redis.error_reply(s)}) is the error reply C{s}, as is."""
        self.assertEqual(self.error_of("return {err = 'WRONG my bad'}"), "WRONG my bad")
        self.assertEqual(self.error_of("return redis.error_reply('E2')"), "E2")

    def test_err_table_inside_array(self) -> None:
        """An C{{err = s}} element of an array is an error element."""
        reply = self.run_script("return {1, {err = 'inner'}}")
        self.assertEqual(reply[0], 1)
        self.assertIsInstance(reply[1], ResponseError)
        self.assertEqual(str(reply[1]), "inner")

    def test_keys_and_argv(self) -> None:
        """C{KEYS} and C{ARGV} are tables of strings, split at C{numkeys}."""
        reply = self.run_script(
            "return {#KEYS, #ARGV, KEYS[1], ARGV[1], ARGV[2]}", ("k",), (7, "x")
        )
        self.assertEqual(reply, [1, 2, b"k", b"7", b"x"])
        self.assertEqual(self.run_script("return type(ARGV[1])", (), (7,)), b"string")


@skip_unless_importable("lupa", extra="testing")
class RedisToLuaTests(_Scripting):
    """
    C{redis.call} runs the store's commands; their replies reach the script
    as Redis hands them over.
    """

    def test_integer_is_number(self) -> None:
        """An integer reply is a Lua number."""
        self.assertEqual(self.run_script("return redis.call('rpush', KEYS[1], 'a') + 1", ("l",)), 2)

    def test_bulk_is_string(self) -> None:
        """A bulk string reply is a Lua string."""
        self.redis.execute_command("SET", "k", "v")
        self.assertEqual(self.run_script("return type(redis.call('get', 'k'))"), b"string")

    def test_nil_is_false(self) -> None:
        """A nil reply is C{false} (not C{nil})."""
        self.assertEqual(self.run_script("return redis.call('get', 'missing') == false"), 1)

    def test_array_is_table(self) -> None:
        """An array reply is a table; its nil elements are C{false}."""
        self.redis.execute_command("RPUSH", "l", "a", "b")
        self.assertEqual(self.run_script("local t = redis.call('lrange', 'l', 0, -1) return #t"), 2)
        self.assertEqual(
            self.run_script("return redis.call('zscore', 'nothing', 'm') == false"),
            1,
        )

    def test_status_is_ok_table(self) -> None:
        """A status reply is C{{ok = status}}."""
        self.assertEqual(self.run_script("return redis.call('set', 'k', 'v').ok"), b"OK")

    def test_numbers_as_arguments(self) -> None:
        """Numbers passed to a command are sent as their decimal text."""
        self.run_script("redis.call('set', 'i', 5) redis.call('set', 'f', 2.5)")
        self.assertEqual(self.redis.raw("i"), b"5")
        self.assertEqual(self.redis.raw("f"), b"2.5")

    def test_other_arguments_refused(self) -> None:
        """A table (or boolean) argument is an error, as in Redis."""
        self.assertIn(
            "ERR Lua redis lib command arguments must be strings or integers",
            self.error_of("return redis.call('get', {})"),
        )

    def test_call_error_aborts_the_script(self) -> None:
        """
        An error reply to C{redis.call} ends the script with that error,
        naming the script and the line; what the script wrote before stays.
        """

        def wrong_type(*args: bytes) -> NoReturn:
            raise ResponseError("WRONGTYPE Operation against a key")

        self.redis._c_boom = wrong_type  # type: ignore[attr-defined]
        source = "redis.call('set', 'k', 'v')\nredis.call('boom')\nredis.call('set', 'k', 'w')"
        self.assertEqual(
            self.error_of(source),
            "WRONGTYPE Operation against a key script: {}, on @user_script:2.".format(_sha(source)),
        )
        self.assertEqual(self.redis.raw("k"), b"v")

    def test_pcall_returns_the_error(self) -> None:
        """C{redis.pcall} hands the error reply to the script as C{{err = ...}}."""
        self.assertEqual(
            self.run_script("return redis.pcall('nope').err"),
            b"ERR Unknown Redis command called from script",
        )

    def test_unknown_command_and_wrong_arity(self) -> None:
        """An unknown command and a wrong number of arguments are script errors."""
        self.assertIn(
            "ERR Unknown Redis command called from script", self.error_of("redis.call('nope')")
        )
        self.assertIn(
            "ERR Wrong number of args calling Redis command from script",
            self.error_of("redis.call('get')"),
        )
        self.assertIn(
            "ERR Please specify at least one argument for this redis lib call",
            self.error_of("redis.call()"),
        )

    def test_blocking_command_refused(self) -> None:
        """Blocking commands are not allowed in a script."""
        self.assertIn(
            "ERR This Redis command is not allowed from script",
            self.error_of("redis.call('blmove', 'a', 'b', 'LEFT', 'RIGHT', 0)"),
        )

    def test_store_defect_is_not_a_script_error(self) -> None:
        """An exception of the store's own Python code propagates as itself."""

        def broken(*args: bytes) -> NoReturn:
            raise ZeroDivisionError("defect")

        self.redis._c_broken = broken  # type: ignore[attr-defined]
        self.assertRaises(
            ZeroDivisionError, self.redis.execute_command, "EVAL", "redis.call('broken')", 0
        )

    def test_blocked_client_served_after_the_script(self) -> None:
        """
        A client blocked in BLMOVE gets a pushed item only once the script
        has finished: the script is atomic.
        """
        waiting = self.redis.execute_command("BLMOVE", "src", "dst", "LEFT", "RIGHT", 0)
        seen = self.run_script("redis.call('rpush', 'src', 'x') return redis.call('llen', 'src')")
        self.assertEqual(seen, 1)
        self.redis.execute_command("EVAL", "redis.call('rpush', 'src', 'y')", 0)
        self.assertEqual(self.successResultOf(waiting), "x")


@skip_unless_importable("lupa", extra="testing")
class ScriptErrorTests(_Scripting):
    """
    Errors of the script itself, and Redis 7's guard on globals.
    """

    def test_runtime_error(self) -> None:
        """A Lua runtime error is an C{ERR} reply naming script and line."""
        source = "return 1 + nil"
        self.assertEqual(
            self.error_of(source),
            "ERR user_script:1: attempt to perform arithmetic on a nil value "
            "script: {}, on @user_script:1.".format(_sha(source)),
        )

    def test_compile_error(self) -> None:
        """A script that does not compile is refused before it runs."""
        self.assertEqual(
            self.error_of("return 1 +"),
            "ERR Error compiling script (new function): user_script:1: "
            "unexpected symbol near '<eof>'",
        )

    def test_globals_guarded(self) -> None:
        """A script can neither create a global nor read an undefined one."""
        self.assertIn("Attempt to modify a readonly table", self.error_of("x = 1"))
        self.assertIn(
            "Script attempted to access nonexistent global variable 'y'",
            self.error_of("return y"),
        )

    def test_too_few_arguments_for_numkeys(self) -> None:
        """C{numkeys} larger than the arguments is an error."""
        d = self.redis.execute_command("EVAL", "return 1", 2, "k")
        self.assertIn("Number of keys", str(self.failureResultOf(d, ResponseError).value))


@skip_unless_importable("lupa", extra="testing")
class ScriptCacheTests(_Scripting):
    """
    EVAL loads a script, EVALSHA runs a loaded one, SCRIPT manages them.
    """

    def test_evalsha_unknown(self) -> None:
        """EVALSHA of a script never loaded answers NOSCRIPT."""
        d = self.redis.execute_command("EVALSHA", _sha("return 1"), 0)
        self.assertTrue(str(self.failureResultOf(d, ResponseError).value).startswith("NOSCRIPT"))

    def test_eval_loads(self) -> None:
        """After EVAL, EVALSHA of the same source runs it."""
        self.successResultOf(self.redis.execute_command("EVAL", "return ARGV[1]", 0, "a"))
        d = self.redis.execute_command("EVALSHA", _sha("return ARGV[1]"), 0, "b")
        self.assertEqual(self.successResultOf(d), "b")

    def test_script_load_exists_flush(self) -> None:
        """SCRIPT LOAD returns the SHA1, EXISTS sees it, FLUSH forgets it."""
        sha = self.successResultOf(self.redis.execute_command("SCRIPT", "LOAD", "return 2"))
        self.assertEqual(sha, _sha("return 2"))
        self.assertEqual(
            self.successResultOf(self.redis.execute_command("SCRIPT", "EXISTS", sha, "0" * 40)),
            [1, 0],
        )
        self.assertEqual(self.successResultOf(self.redis.execute_command("EVALSHA", sha, 0)), 2)
        self.successResultOf(self.redis.execute_command("SCRIPT", "FLUSH"))
        self.failureResultOf(self.redis.execute_command("EVALSHA", sha, 0), ResponseError)


class WithoutLupaTests(SynchronousTestCase):
    """
    Without C{lupa}, running a script fails naming the extra to install.
    """

    def test_eval_names_the_extra(self) -> None:
        """EVAL fails with L{LuaUnavailable}, saying C{pip install 'txmsg[testing]'}."""
        self.patch(_redis_lua, "_lupa", None)
        d = FakeRedis(Clock()).execute_command("EVAL", "return 1", 0)
        message = str(self.failureResultOf(d, LuaUnavailable).value)
        self.assertEqual(message, NEEDS_LUPA)
        self.assertIn("pip install 'txmsg[testing]'", message)

    def test_evalsha_still_noscript(self) -> None:
        """EVALSHA of an unloaded script still answers NOSCRIPT (so clients go on to EVAL)."""
        self.patch(_redis_lua, "_lupa", None)
        d = FakeRedis(Clock()).execute_command("EVALSHA", "0" * 40, 0)
        self.failureResultOf(d, ResponseError)


class StoreCommandTests(SynchronousTestCase):
    """
    The store commands txmsg's scripts call, with the options they use.
    """

    def setUp(self) -> None:
        self.redis = FakeRedis(Clock())

    def cmd(self, *args: Any) -> Any:
        return self.successResultOf(self.redis.execute_command(*args))

    def test_zrangebyscore(self) -> None:
        """
        ZRANGEBYSCORE orders by score then member, takes C{-inf}/C{+inf} and
        exclusive C{(} bounds, WITHSCORES and LIMIT offset count.
        """
        self.cmd("ZADD", "z", 2, "b", 1, "c", 2, "a", 3.5, "d")
        self.assertEqual(self.cmd("ZRANGEBYSCORE", "z", "-inf", "+inf"), ["c", "a", "b", "d"])
        self.assertEqual(self.cmd("ZRANGEBYSCORE", "z", "(1", "(3.5"), ["a", "b"])
        self.assertEqual(
            self.cmd("ZRANGEBYSCORE", "z", "-inf", 10, "WITHSCORES", "LIMIT", 1, 2),
            ["a", "2", "b", "2"],
        )
        self.assertEqual(self.cmd("ZRANGE", "z", -1, -1, "WITHSCORES"), ["d", "3.5"])
        self.assertEqual(self.cmd("ZSCORE", "z", "a"), "2")

    def test_lrem_counts(self) -> None:
        """LREM removes from the head (count > 0), the tail (< 0) or all (0)."""
        self.cmd("RPUSH", "l", "x", "y", "x", "x")
        self.assertEqual(self.cmd("LREM", "l", -1, "x"), 1)
        self.assertEqual(self.cmd("LRANGE", "l", 0, -1), ["x", "y", "x"])
        self.assertEqual(self.cmd("LREM", "l", 1, "x"), 1)
        self.assertEqual(self.cmd("LREM", "l", 0, "x"), 1)
        self.assertEqual(self.cmd("LRANGE", "l", 0, -1), ["y"])

    def test_hash(self) -> None:
        """HSET counts new fields, HINCRBY counts up from 0, HDEL removes."""
        self.assertEqual(self.cmd("HSET", "h", "a", "1", "b", "2"), 2)
        self.assertEqual(self.cmd("HINCRBY", "h", "n", 1), 1)
        self.assertEqual(self.cmd("HINCRBY", "h", "n", 2), 3)
        self.assertEqual(self.cmd("HDEL", "h", "a", "zz"), 1)
        self.assertEqual(self.cmd("HGETALL", "h"), ["b", "2", "n", "3"])
