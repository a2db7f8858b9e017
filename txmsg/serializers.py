# -*- test-case-name: txmsg.test.test_serializers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Turn Python values into bytes and back, by name.

Every txmsg component that stores or sends values (Redis pub/sub payloads, the
Redis cache) picks its codec here, by name or by passing an object with
C{dumps}/C{loads}:

  - C{"json"} (the default almost everywhere): UTF-8 JSON, readable by any
    language;
  - C{"msgpack"}: compact binary, available when the C{msgpack} package is
    installed (C{pip install msgpack});
  - C{"bytes"}: no conversion, C{bytes} in and out (C{str} is encoded UTF-8 on
    the way in);
  - C{"text"}: C{str} in and out, UTF-8 on the wire;
  - C{"pickle"}: B{dangerous}, only when named explicitly.  Unpickling runs
    code chosen by whoever can write the data: anybody able to publish on your
    channel or write your cache key can execute code in your process.  Use it
    only for data that only you can write.  It is never a default and
    L{get_serializer} logs a warning the first time it is handed out.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol, runtime_checkable

from twisted.logger import Logger

__all__ = [
    "Serializer",
    "SerializationError",
    "UnknownSerializer",
    "JSONSerializer",
    "MsgpackSerializer",
    "BytesSerializer",
    "TextSerializer",
    "PickleSerializer",
    "get_serializer",
]

_log = Logger()


class SerializationError(ValueError):
    """
    A value could not be encoded, or bytes could not be decoded.
    """


class UnknownSerializer(LookupError):
    """
    No serializer has the requested name (or it needs a package that is not
    installed).
    """


@runtime_checkable
class Serializer(Protocol):
    """
    What txmsg needs from a codec: a name and two functions.
    """

    name: str

    def dumps(self, value: Any) -> bytes:
        """
        Encode C{value}; raise L{SerializationError} when it can't be.
        """

    def loads(self, data: bytes) -> Any:
        """
        Decode C{data}; raise L{SerializationError} when it is invalid.
        """


class JSONSerializer:
    """
    UTF-8 JSON with compact separators; C{loads} accepts C{bytes} or C{str}.
    """

    name = "json"

    def dumps(self, value: Any) -> bytes:
        """
        Encode C{value} as compact UTF-8 JSON.
        """
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise SerializationError(f"cannot encode as JSON: {e}") from e

    def loads(self, data: bytes) -> Any:
        """
        Decode UTF-8 JSON.
        """
        try:
            return json.loads(data)
        except (TypeError, ValueError) as e:
            raise SerializationError(f"invalid JSON: {e}") from e


class MsgpackSerializer:
    """
    MessagePack through the optional C{msgpack} package.
    """

    name = "msgpack"

    def __init__(self) -> None:
        try:  # msgpack is optional: imported on use, with a clear error if absent
            import msgpack
        except ImportError as e:
            raise UnknownSerializer(
                "the 'msgpack' serializer needs the msgpack package: pip install msgpack"
            ) from e
        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        """
        Encode C{value} with msgpack (C{use_bin_type=True}).
        """
        try:
            return bytes(self._msgpack.packb(value, use_bin_type=True))
        except (TypeError, ValueError, OverflowError) as e:
            raise SerializationError(f"cannot encode as msgpack: {e}") from e

    def loads(self, data: bytes) -> Any:
        """
        Decode msgpack (C{raw=False}: msgpack strings become C{str}).
        """
        try:
            return self._msgpack.unpackb(data, raw=False)
        except Exception as e:
            raise SerializationError(f"invalid msgpack: {e}") from e


class BytesSerializer:
    """
    No conversion: C{bytes} stay C{bytes}; C{str} is encoded UTF-8 on the way in.
    """

    name = "bytes"

    def dumps(self, value: Any) -> bytes:
        """
        Return C{value} as bytes (C{str} encoded UTF-8).
        """
        if isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        raise SerializationError(
            f"the 'bytes' serializer takes bytes or str, not {type(value).__name__}"
        )

    def loads(self, data: bytes) -> bytes:
        """
        Return C{data} unchanged.
        """
        return data


class TextSerializer:
    """
    C{str} in and out, strict UTF-8 on the wire.
    """

    name = "text"

    def dumps(self, value: Any) -> bytes:
        """
        Encode a C{str} as UTF-8 (C{bytes} pass unchanged).
        """
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        raise SerializationError(f"the 'text' serializer takes str, not {type(value).__name__}")

    def loads(self, data: bytes) -> str:
        """
        Decode strict UTF-8.
        """
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SerializationError(f"not UTF-8 text: {e}") from e


class PickleSerializer:
    """
    Python pickle.  B{Never use it on data others can write}: C{loads} executes
    code chosen by the author of the bytes.
    """

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        """
        Pickle C{value} with the highest protocol.
        """
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise SerializationError(f"cannot pickle: {e}") from e

    def loads(self, data: bytes) -> Any:
        """
        Unpickle C{data} (trusted data only!).
        """
        try:
            return pickle.loads(data)  # noqa: S301 - explicit opt-in, documented
        except Exception as e:
            raise SerializationError(f"invalid pickle: {e}") from e


_FACTORIES: dict[str, Any] = {
    "json": JSONSerializer,
    "msgpack": MsgpackSerializer,
    "bytes": BytesSerializer,
    "text": TextSerializer,
    "pickle": PickleSerializer,
}
_cache: dict[str, Serializer] = {}


def get_serializer(spec: str | Serializer) -> Serializer:
    """
    Return the serializer named C{spec}, or C{spec} itself when it already has
    C{dumps} and C{loads}.

    @param spec: C{"json"}, C{"msgpack"}, C{"bytes"}, C{"text"}, C{"pickle"}
        (explicit opt-in, trusted data only) or a L{Serializer}.
    @raise UnknownSerializer: for an unknown name, or C{"msgpack"} without
        the msgpack package.
    """
    if not isinstance(spec, str):
        if callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None)):
            return spec
        raise UnknownSerializer(f"a serializer needs dumps() and loads(), got {spec!r}")
    found = _cache.get(spec)
    if found is not None:
        return found
    factory = _FACTORIES.get(spec)
    if factory is None:
        raise UnknownSerializer(
            "unknown serializer {!r}; choose one of {}".format(spec, ", ".join(sorted(_FACTORIES)))
        )
    found = factory()
    if spec == "pickle":
        _log.warn(
            "Using the pickle serializer: only for data that nobody else can "
            "write (unpickling runs the writer's code)."
        )
    _cache[spec] = found
    return found
