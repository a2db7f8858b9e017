# -*- test-case-name: txmsg.test.test_redis_lua -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Lua scripting for the in-memory Redis: C{EVAL}, C{EVALSHA} and C{SCRIPT}
run the real script source in an embedded Lua 5.1 (the version Redis embeds),
through the optional package C{lupa} (C{pip install 'txmsg[testing]'}).

Inside a script, C{redis.call} and C{redis.pcall} run the in-memory Redis's
own commands, and values cross between Lua and Redis by Redis's rules:

    Redis reply -> Lua              Lua value -> Redis reply
    integer     -> number           number        -> integer (truncated)
    bulk string -> string           string        -> bulk string
    array       -> table            table         -> array, up to the first nil
    nil         -> false            false, nil    -> nil
    status      -> {ok = "..."}     true          -> integer 1
    error       -> {err = "..."}    {ok = s}      -> status s
                                    {err = s}     -> error s

C{KEYS} and C{ARGV} are tables of strings.  An error reply to C{redis.call}
aborts the script with that error (C{redis.pcall} returns it as a table);
a script cannot create globals or read undefined ones (as in Redis 7).
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable
from typing import Any

from txmsg.testing._redis_reply import OK, ResponseError, Status

try:
    from lupa import lua51 as _lupa
except ImportError:  # no lupa, or a build without Lua 5.1
    try:
        import lupa as _lupa
    except ImportError:
        _lupa = None

__all__ = ["LuaScripts", "LuaUnavailable"]

NEEDS_LUPA = (
    "running Redis Lua scripts in txmsg.testing.MemoryRedis needs the optional "
    "package 'lupa': pip install 'txmsg[testing]'"
)

# Commands Redis refuses inside a script.
_NOT_IN_SCRIPTS = frozenset(
    "blmove brpoplpush blpop brpop eval evalsha script subscribe psubscribe "
    "unsubscribe punsubscribe".split()
)

# The redis library scripts see, and Redis 7's guard on globals.  The chunk
# gets the Python dispatcher as its argument.
_PRELUDE = b"""
local dispatch = ...
local getinfo = debug.getinfo
redis = {
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  log = function() end,
  status_reply = function(s) return {ok = s} end,
  error_reply = function(s) return {err = s} end,
}
function redis.call(...)
  local ok, reply = dispatch(...)
  if not ok then
    reply.line = getinfo(2, 'l').currentline
    error(reply)
  end
  return reply
end
function redis.pcall(...)
  local _, reply = dispatch(...)
  return reply
end
python, io, os, package, require, module, dofile, loadfile = nil
setmetatable(_G, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '"
      .. tostring(name) .. "'", 2)
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
})
return function(source)
  local fn, problem = loadstring(source, '@user_script')
  return fn, problem
end, function(fn, keys, argv)
  rawset(_G, 'KEYS', keys)
  rawset(_G, 'ARGV', argv)
  local ok, result = pcall(fn)
  return ok, result
end
"""

_WHERE = re.compile(rb"^user_script:(\d+): ")


def _located(message: bytes, sha: str, line: int | None) -> str:
    """A script's error as Redis reports it: which script, which line."""
    where = "" if line is None else ", on @user_script:{}".format(line)
    return "{} script: {}{}.".format(message.decode("utf-8", "replace"), sha, where)


class LuaUnavailable(Exception):
    """
    A script was run on L{txmsg.testing.MemoryRedis} but C{lupa}, which
    runs it, is not installed (C{pip install 'txmsg[testing]'}).
    """


class LuaScripts:
    """
    The script cache and Lua runtime of one in-memory Redis.

    @ivar sources: the loaded scripts, SHA1 (hex) -> source.
    """

    def __init__(self, lookup: Callable[[str], Callable[..., Any] | None]) -> None:
        """
        @param lookup: the store's implementation of a command, by its
            lower-case name (L{None} when it has none).  Called with the
            arguments as bytes, it returns the reply (see
            L{txmsg.testing._redis_reply}) or raises L{ResponseError}.
        """
        self._lookup = lookup
        self.sources: dict[str, bytes] = {}
        self._compiled: dict[str, Any] = {}
        self._lua: Any = None
        self._compile: Any = None
        self._run: Any = None

    # -- the commands --------------------------------------------------------------

    def load(self, source: bytes) -> bytes:
        """C{SCRIPT LOAD}: cache C{source}; returns its SHA1."""
        sha = hashlib.sha1(source).hexdigest()
        self._function(sha, source)
        self.sources[sha] = source
        return sha.encode()

    def exists(self, *shas: bytes) -> list[int]:
        """C{SCRIPT EXISTS}."""
        return [int(s.decode().lower() in self.sources) for s in shas]

    def flush(self) -> Status:
        """C{SCRIPT FLUSH}."""
        self.sources.clear()
        self._compiled.clear()
        return OK

    def eval(self, source: bytes, numkeys: bytes, *rest: bytes) -> Any:
        """C{EVAL}: load and run."""
        return self.evalsha(self.load(source), numkeys, *rest)

    def evalsha(self, sha: bytes, numkeys: bytes, *rest: bytes) -> Any:
        """C{EVALSHA}; C{NOSCRIPT} when the script is not loaded."""
        name = sha.decode().lower()
        source = self.sources.get(name)
        if source is None:
            raise ResponseError("NOSCRIPT No matching script. Please use EVAL.")
        try:
            n = int(numkeys)
        except ValueError:
            raise ResponseError("ERR value is not an integer or out of range") from None
        if not 0 <= n <= len(rest):
            raise ResponseError("ERR Number of keys can't be greater than number of args")
        fn = self._function(name, source)
        lua = self._lua
        ok, result = self._run(fn, lua.table_from(rest[:n]), lua.table_from(rest[n:]))
        if isinstance(result, BaseException):
            raise result  # a defect of the store's own Python, not of the script
        if ok:
            reply = self._to_redis(result)
            if isinstance(reply, ResponseError):
                raise reply
            return reply
        if self._is_table(result) and isinstance(result[b"err"], bytes):
            raise ResponseError(_located(result[b"err"], name, result[b"line"]))
        message = result if isinstance(result, bytes) else str(result).encode()
        where = _WHERE.match(message)
        line = int(where.group(1)) if where else None
        raise ResponseError(_located(b"ERR " + message, name, line))

    # -- Lua runtime ----------------------------------------------------------------

    def _function(self, sha: str, source: bytes) -> Any:
        fn = self._compiled.get(sha)
        if fn is None:
            if self._lua is None:
                self._start()
            fn, problem = self._compile(source)
            if fn is None:
                raise ResponseError(
                    "ERR Error compiling script (new function): " + problem.decode()
                )
            self._compiled[sha] = fn
        return fn

    def _start(self) -> None:
        if _lupa is None:
            raise LuaUnavailable(NEEDS_LUPA)
        self._lua = _lupa.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
        )
        self._compile, self._run = self._lua.execute(_PRELUDE, self._dispatch)

    def _is_table(self, value: Any) -> bool:
        return _lupa is not None and _lupa.lua_type(value) == "table"

    def _dispatch(self, *args: Any) -> tuple[bool, Any]:
        """C{redis.call}/C{redis.pcall}: (ok, reply as a Lua value)."""
        try:
            if not args:
                raise ResponseError(
                    "ERR Please specify at least one argument for this redis lib call"
                )
            words = [self._argument(a) for a in args]
            name = words[0].decode("utf-8", "replace").lower()
            if name in _NOT_IN_SCRIPTS:
                raise ResponseError("ERR This Redis command is not allowed from script")
            method = self._lookup(name)
            if method is None:
                raise ResponseError("ERR Unknown Redis command called from script")
            try:
                inspect.signature(method).bind(*words[1:])
            except TypeError:
                raise ResponseError(
                    "ERR Wrong number of args calling Redis command from script"
                ) from None
            reply = method(*words[1:])
        except ResponseError as e:
            return False, self._lua.table_from({b"err": str(e).encode()})
        return True, self._to_lua(reply)

    @staticmethod
    def _argument(value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if float(value).is_integer() and abs(value) < 2**63:
                return b"%d" % value
            return repr(float(value)).encode()
        raise ResponseError("ERR Lua redis lib command arguments must be strings or integers")

    def _to_lua(self, reply: Any) -> Any:
        """A reply of the store as Redis hands it to a script."""
        if isinstance(reply, Status):
            return self._lua.table_from({b"ok": bytes(reply)})
        if isinstance(reply, ResponseError):
            return self._lua.table_from({b"err": str(reply).encode()})
        if reply is None:
            return False
        if isinstance(reply, (bytes, int)) and not isinstance(reply, bool):
            return reply
        if isinstance(reply, list):
            return self._lua.table_from([self._to_lua(r) for r in reply])
        raise TypeError("not a Redis reply: {!r}".format(reply))

    def _to_redis(self, value: Any) -> Any:
        """A script's Lua value as Redis replies with it."""
        if value is None or value is False:
            return None
        if value is True:
            return 1
        if isinstance(value, (int, float)):
            return int(value)
        if isinstance(value, bytes):
            return value
        if self._is_table(value):
            if isinstance(value[b"err"], bytes):
                return ResponseError(value[b"err"].decode("utf-8", "replace"))
            if isinstance(value[b"ok"], bytes):
                return Status(value[b"ok"])
            out = []
            i = 1
            while value[i] is not None:
                out.append(self._to_redis(value[i]))
                i += 1
            return out
        return None  # functions, userdata: Redis replies nil
