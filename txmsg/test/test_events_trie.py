# -*- test-case-name: txmsg.test.test_events_trie -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.events._trie.GlobTrie}, the registry's glob matcher, and
for the registry's resolution cache on top of it: the trie must match
exactly what the linear scan of L{fnmatch}-compiled patterns it replaced
matched.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase, translate
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.events import EventRegistry
from txmsg.events._trie import _ANY, _STAR, GlobTrie, tokenize
from txmsg.test._optional import fuzz

# Characters that exercise every corner of the glob syntax: wildcards,
# bracket classes (negation, ranges, a leading "]", a backslash, set
# operators) and the dot that topic names use.
_PATTERN_CHARS = "ab.*?[]!-^\\&"
_NAME_CHARS = "ab.-]![^\\&c"


def linear(patterns: list[str], name: str) -> list[int]:
    """The matcher the trie replaced: every pattern's compiled regex, in turn."""
    return [i for i, p in enumerate(patterns) if re.compile(translate(p)).match(name)]


class TokenizeTests(SynchronousTestCase):
    """
    L{tokenize} splits a pattern as L{fnmatch.translate} reads it.
    """

    def test_literals_and_wildcards(self) -> None:
        """Characters are literal tokens; C{?} and C{*} are wildcards."""
        self.assertEqual(tokenize("a.?*"), ["a", ".", _ANY, _STAR])

    def test_stars_collapse(self) -> None:
        """Consecutive stars are one token."""
        self.assertEqual(tokenize("a**b***"), ["a", _STAR, "b", _STAR])

    def test_classes(self) -> None:
        """A class runs to the first C{]} after an optional C{!} and C{]}."""
        self.assertEqual(tokenize("[ab]c"), [("[", "[ab]"), "c"])
        self.assertEqual(tokenize("[!]x]"), [("[", "[!]x]")])
        self.assertEqual(tokenize("[]]"), [("[", "[]]")])

    def test_unclosed_bracket_is_literal(self) -> None:
        """A C{[} without a closing C{]} is a literal character."""
        self.assertEqual(tokenize("a[b"), ["a", "[", "b"])


class GlobTrieTests(SynchronousTestCase):
    """
    Adding, matching and removing patterns.
    """

    def test_match(self) -> None:
        """Every stored pattern matching the name is found, and only those."""
        trie: GlobTrie[str] = GlobTrie()
        for pattern in ("order.*", "*", "order.?", "*.paid", "order.[pq]aid", "x*"):
            trie.add(pattern, pattern)
        self.assertEqual(
            sorted(trie.match("order.paid")), ["*", "*.paid", "order.*", "order.[pq]aid"]
        )
        self.assertEqual(sorted(trie.match("order.x")), ["*", "order.*", "order.?"])
        self.assertEqual(trie.match("order"), ["*"])
        self.assertEqual(len(trie), 6)

    def test_star_crosses_dots(self) -> None:
        """C{*} matches any characters, dots included, and the empty string."""
        trie: GlobTrie[int] = GlobTrie()
        trie.add("a*b", 1)
        self.assertEqual(trie.match("ab"), [1])
        self.assertEqual(trie.match("a.x.y.b"), [1])
        self.assertEqual(trie.match("a.x.y.bc"), [])

    def test_same_pattern_twice(self) -> None:
        """Two items under one pattern are both found."""
        trie: GlobTrie[int] = GlobTrie()
        trie.add("a.*", 1)
        trie.add("a.*", 2)
        self.assertEqual(sorted(trie.match("a.b")), [1, 2])

    def test_remove_prunes(self) -> None:
        """Removing every pattern leaves an empty trie, with no dead nodes."""
        trie: GlobTrie[int] = GlobTrie()
        patterns = ["a.*", "a.b*c", "a.[bc]?", "*x", "a.*"]
        for i, pattern in enumerate(patterns):
            trie.add(pattern, i)
        trie.remove("a.b*c", 1)
        self.assertEqual(sorted(trie.match("a.bxc")), [0, 4])
        self.assertEqual(sorted(trie.match("a.bx")), [0, 2, 3, 4])
        for i, pattern in enumerate(patterns):
            if i != 1:
                trie.remove(pattern, i)
        self.assertEqual((len(trie), list(trie)), (0, []))
        self.assertTrue(trie._root.empty())

    def test_remove_unknown(self) -> None:
        """Removing a pair that is not stored raises L{KeyError}."""
        trie: GlobTrie[int] = GlobTrie()
        trie.add("a.*", 1)
        self.assertRaises(KeyError, trie.remove, "a.*", 2)
        self.assertRaises(KeyError, trie.remove, "b.*", 1)
        self.assertEqual(trie.match("a.z"), [1])

    def test_many_patterns(self) -> None:
        """Ten thousand distinct patterns: each name finds its own."""
        trie: GlobTrie[int] = GlobTrie()
        for i in range(10_000):
            trie.add(f"device.{i}.*", i)
        trie.add("device.*.temp", -1)
        self.assertEqual(trie.match("device.4242.humidity"), [4242])
        self.assertEqual(sorted(trie.match("device.7.temp")), [-1, 7])

    @fuzz(
        lambda st: st.lists(st.text(_PATTERN_CHARS, min_size=1, max_size=8), max_size=8),
        lambda st: st.lists(st.text(_NAME_CHARS, max_size=8), min_size=1, max_size=5),
        examples=1500,
    )
    def test_equivalent_to_linear_scan(self, patterns: list[str], names: list[str]) -> None:
        """
        For random patterns and names the trie finds exactly what the linear
        scan of compiled patterns finds (and what L{fnmatchcase} says), also
        after removing half of the patterns.
        """
        trie: GlobTrie[int] = GlobTrie()
        for i, pattern in enumerate(patterns):
            trie.add(pattern, i)
        for name in names:
            expected = linear(patterns, name)
            self.assertEqual(sorted(trie.match(name)), expected)
            self.assertEqual(expected, [i for i, p in enumerate(patterns) if fnmatchcase(name, p)])
        for i in range(0, len(patterns), 2):
            trie.remove(patterns[i], i)
        for name in names:
            expected = [i for i in linear(patterns, name) if i % 2]
            self.assertEqual(sorted(trie.match(name)), expected)


class RegistryResolutionTests(SynchronousTestCase):
    """
    The registry resolves names through the trie and its cache.
    """

    def setUp(self) -> None:
        self.registry = EventRegistry(reactor=Clock())
        self.named: dict[str, Any] = {}

    def h(self, label: str) -> Any:
        """The handler called C{label} (the same function every time)."""

        def handler(event: Any) -> None:
            return None

        handler.__name__ = label
        return self.named.setdefault(label, handler)

    def handlers(self, name: str) -> list[str]:
        return [reg.handler.__name__ for reg in self.registry.registrations_for(name)]

    def test_add_invalidates_matching_names(self) -> None:
        """
        A glob added after a name was resolved (and cached) applies to that
        name's next resolution; names it does not match keep their entry.
        """
        self.registry.add("order.paid", self.h("exact"))
        self.assertEqual(self.handlers("order.paid"), ["exact"])
        self.assertEqual(self.handlers("user.new"), [])
        self.registry.add("order.*", self.h("glob"), priority=1)
        self.assertNotIn("order.paid", self.registry._cache)
        self.assertIn("user.new", self.registry._cache)
        self.assertEqual(self.handlers("order.paid"), ["glob", "exact"])

    def test_remove_invalidates_matching_names(self) -> None:
        """A removed glob is gone from names resolved before the removal."""
        reg = self.registry.add("order.*", self.h("glob"))
        self.registry.add("*", self.h("all"))
        self.assertEqual(self.handlers("order.paid"), ["glob", "all"])
        self.assertEqual(self.handlers("user.new"), ["all"])
        reg.cancel()
        self.assertNotIn("order.paid", self.registry._cache)
        self.assertIn("user.new", self.registry._cache)
        self.assertEqual(self.handlers("order.paid"), ["all"])
        self.assertEqual(self.registry.remove(self.h("all")), 1)
        self.assertEqual(self.handlers("order.paid"), [])
        self.assertEqual(list(self.registry._globs), [])

    def test_order_across_exact_and_globs(self) -> None:
        """Priority first, then registration order, exact and glob alike."""
        self.registry.add("a.*", self.h("g1"))
        self.registry.add("a.b", self.h("e1"))
        self.registry.add("a.?", self.h("g2"), priority=5)
        self.registry.add("*", self.h("g3"))
        self.registry.add("a.b", self.h("e2"), priority=5)
        self.assertEqual(self.handlers("a.b"), ["g2", "e2", "g1", "e1", "g3"])

    @fuzz(
        lambda st: st.lists(
            st.tuples(st.text(_PATTERN_CHARS, min_size=1, max_size=6), st.integers(-2, 2)),
            max_size=10,
        ),
        lambda st: st.lists(st.text(_NAME_CHARS, max_size=6), min_size=1, max_size=5),
        examples=500,
    )
    def test_registry_equivalent_to_linear_scan(
        self, entries: list[tuple[str, int]], names: list[str]
    ) -> None:
        """
        The registry's resolution of random names (twice: cold and cached)
        is the ordered list the linear scan computes.
        """
        registry = EventRegistry(reactor=Clock())
        regs = [registry.add(p, print, priority=prio) for p, prio in entries]
        patterns = [p for p, _ in entries]
        for name in names:
            hits = linear(patterns, name)
            expected = tuple(sorted((regs[i] for i in hits), key=lambda r: (-r.priority, r._seq)))
            self.assertEqual(registry.registrations_for(name), expected)
            self.assertEqual(registry.registrations_for(name), expected)
