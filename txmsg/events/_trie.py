# -*- test-case-name: txmsg.test.test_events_trie -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
L{GlobTrie}: the registry's glob patterns in one character trie, so that
matching an event name costs time in proportion to the name's length (and
the few patterns that share its prefixes), not to the number of patterns.

This is the topic trie of message brokers (RabbitMQ's topic exchange, MQTT
brokers) adapted to the registry's shell-glob syntax, which is richer than
dotted topics: C{*} matches any run of characters (dots included), C{?} one
character and C{[...]} one character of a class, anywhere in a pattern.  So
the trie is over characters, not dot-separated words.

Each pattern is split into tokens (a literal character, C{?}, a class, or
C{*}) and stored as a path from the root; a C{*} token leads to a node that
loops on any character.  Matching runs the trie as a non-deterministic
automaton: it keeps the set of nodes the name's prefix can have reached and
advances all of them by one character at a time (the classic simulation; no
backtracking, so no pattern can make it exponential).  The registrations at
the nodes reached when the name ends are the matches.

The semantics are exactly those of L{fnmatch.fnmatchcase}: bracket classes
are scanned as L{fnmatch.translate} scans them and each class is compiled by
it, and a property test compares the trie with C{fnmatchcase} on random
patterns and names.  Pure logic: nothing here imports Twisted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fnmatch import translate
from typing import Generic, TypeVar

_T = TypeVar("_T")

# Token kinds: a literal character is the character itself (a 1-char str);
# the others are tuples, which never equal a str.
_ANY = ("?",)
_STAR = ("*",)
_Token = str | tuple[str, ...]


def tokenize(pattern: str) -> list[_Token]:
    """
    Split a glob C{pattern} into tokens: 1-character literal strings,
    C{_ANY}, C{_STAR} (consecutive stars collapsed into one, as
    L{fnmatch.translate} does) and C{("[", text)} for a bracket class whose
    source is C{text}.  A C{[} without its closing C{]} is a literal, as in
    L{fnmatch}.
    """
    tokens: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not tokens or tokens[-1] is not _STAR:
                tokens.append(_STAR)
        elif c == "?":
            tokens.append(_ANY)
        elif c == "[":
            # Find the closing bracket exactly as fnmatch.translate does.
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                tokens.append("[")
            else:
                tokens.append(("[", pattern[i - 1 : j + 1]))
                i = j + 1
        else:
            tokens.append(c)
    return tokens


def _class_matcher(text: str) -> Callable[[str], object]:
    """A predicate for one character against the bracket class C{text}."""
    return re.compile(translate(text)).match


class _Node(Generic[_T]):
    """
    One trie node.  C{star} is the node after a C{*} token leaving this node
    (it is also reached without consuming anything: C{*} matches the empty
    string); C{loop} is true on such nodes, which stay reached on any
    character.  C{values} are the items of the patterns that end here.
    """

    __slots__ = ("literal", "any", "classes", "star", "loop", "values")

    def __init__(self, loop: bool = False) -> None:
        self.literal: dict[str, _Node[_T]] = {}
        self.any: _Node[_T] | None = None
        self.classes: dict[str, tuple[Callable[[str], object], _Node[_T]]] = {}
        self.star: _Node[_T] | None = None
        self.loop = loop
        self.values: list[_T] = []

    def empty(self) -> bool:
        return not (
            self.values
            or self.literal
            or self.classes
            or self.any is not None
            or self.star is not None
        )


class GlobTrie(Generic[_T]):
    """
    A set of C{(pattern, item)} pairs; L{match} returns the items whose glob
    pattern matches a name, in no particular order (the caller sorts).
    """

    def __init__(self) -> None:
        self._root: _Node[_T] = _Node()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, pattern: str, item: _T) -> None:
        """Store C{item} under C{pattern} (the same pair may be added twice)."""
        node = self._root
        for token in tokenize(pattern):
            node = self._child(node, token)
        node.values.append(item)
        self._size += 1

    def _child(self, node: _Node[_T], token: _Token) -> _Node[_T]:
        if isinstance(token, str):
            child = node.literal.get(token)
            if child is None:
                child = node.literal[token] = _Node()
        elif token is _STAR:
            child = node.star
            if child is None:
                child = node.star = _Node(loop=True)
        elif token is _ANY:
            child = node.any
            if child is None:
                child = node.any = _Node()
        else:
            entry = node.classes.get(token[1])
            if entry is None:
                entry = node.classes[token[1]] = (_class_matcher(token[1]), _Node())
            child = entry[1]
        return child

    def remove(self, pattern: str, item: _T) -> None:
        """
        Remove one C{(pattern, item)} pair and prune the nodes left empty.

        @raise KeyError: if the pair is not stored.
        """
        path: list[tuple[_Node[_T], _Token]] = []
        node: _Node[_T] | None = self._root
        for token in tokenize(pattern):
            assert node is not None
            path.append((node, token))
            node = self._step(node, token)
            if node is None:
                raise KeyError(pattern)
        assert node is not None
        try:
            node.values.remove(item)
        except ValueError:
            raise KeyError(pattern) from None
        self._size -= 1
        for parent, token in reversed(path):
            if not node.empty():
                break
            self._unlink(parent, token)
            node = parent

    @staticmethod
    def _step(node: _Node[_T], token: _Token) -> _Node[_T] | None:
        if isinstance(token, str):
            return node.literal.get(token)
        if token is _STAR:
            return node.star
        if token is _ANY:
            return node.any
        entry = node.classes.get(token[1])
        return None if entry is None else entry[1]

    @staticmethod
    def _unlink(node: _Node[_T], token: _Token) -> None:
        if isinstance(token, str):
            del node.literal[token]
        elif token is _STAR:
            node.star = None
        elif token is _ANY:
            node.any = None
        else:
            del node.classes[token[1]]

    def match(self, name: str) -> list[_T]:
        """The items whose pattern matches all of C{name}."""
        # A "sink" is a star node with no way out: once reached, its patterns
        # match whatever follows, so it is set aside instead of being carried
        # along character by character.
        sinks: dict[_Node[_T], None] = {}
        states: list[_Node[_T]] = []
        self._reach(self._root, states, sinks)
        for char in name:
            if not states:
                break
            if len(states) == 1:
                # Fast path: one node with literal edges only (a shared prefix).
                node = states[0]
                if not (node.loop or node.classes or node.any is not None):
                    child = node.literal.get(char)
                    if child is None:
                        states = []
                    elif child.star is None:
                        states[0] = child
                    else:
                        states = []
                        self._reach(child, states, sinks)
                    continue
            reached: list[_Node[_T]] = []
            reach = self._reach
            for node in states:
                if node.loop:
                    reached.append(node)
                child = node.literal.get(char)
                if child is not None:
                    reach(child, reached, sinks)
                child = node.any
                if child is not None:
                    reach(child, reached, sinks)
                if node.classes:
                    for matches, child in node.classes.values():
                        if matches(char):
                            reach(child, reached, sinks)
            # The same node can be reached along two paths: keep it once.
            states = list(dict.fromkeys(reached)) if len(reached) > 1 else reached
        found = [value for node in sinks for value in node.values]
        found.extend(value for node in states for value in node.values)
        return found

    @staticmethod
    def _reach(node: _Node[_T], into: list[_Node[_T]], sinks: dict[_Node[_T], None]) -> None:
        """
        Record that C{node} was reached, and so its star node (C{*} matches
        the empty string), which goes to C{sinks} when nothing leaves it.
        """
        into.append(node)
        star = node.star
        if star is not None:
            if star.literal or star.classes or star.any is not None:
                into.append(star)
            else:
                sinks[star] = None

    def __iter__(self) -> Iterator[_T]:
        """Every stored item (depth first; for tests and debugging)."""
        todo = [self._root]
        while todo:
            node = todo.pop()
            yield from node.values
            todo.extend(node.literal.values())
            todo.extend(child for _, child in node.classes.values())
            todo.extend(child for child in (node.any, node.star) if child is not None)
