# -*- test-case-name: txmsg.test.test_net_versions -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The Twisted releases txmsg's use of Twisted internals was tested on.

L{txmsg.net._writethrough} and L{txmsg.net.epollreactor} rely on private
parts of Twisted (C{tcp.Server}'s write buffers, C{EPollReactor}'s loop).
They switch their fast paths on only for a Twisted whose C{major.minor} lies
in L{TESTED} (both ends included); on any other release txmsg falls back to
Twisted's public, standard code and logs one warning.

CI runs the unit suite on the oldest Twisted C{setup.cfg} allows and on the
newest one released (C{scripts/run-tests.sh}); the tests in
C{txmsg.test.test_writethrough.TwistedInternalsTests},
C{txmsg.test.test_epollreactor} and C{txmsg.test.test_net_versions} fail on
a release outside this range or with changed internals.  After checking a
new Twisted, move the upper end here.
"""

from __future__ import annotations

import twisted
from incremental import Version

__all__ = ["TESTED", "tested_range_text", "tested_twisted", "twisted_version"]

#: The oldest and the newest C{(major, minor)} Twisted release tested.
TESTED: tuple[tuple[int, int], tuple[int, int]] = ((23, 10), (26, 10))


def tested_twisted(version: Version | None = None) -> bool:
    """
    @param version: a Twisted version (default: the running one,
        C{twisted.version}).
    @return: whether its C{major.minor} lies in L{TESTED}.
    """
    if version is None:
        version = twisted.version
    oldest, newest = TESTED
    return oldest <= (version.major, version.minor) <= newest


def twisted_version() -> str:
    """
    @return: the running Twisted's version, as text (C{"26.10.0"}).
    """
    return str(twisted.__version__)


def tested_range_text() -> str:
    """
    @return: L{TESTED} as text for messages (C{"23.10 to 26.10"}).
    """
    (a, b), (c, d) = TESTED
    return f"{a}.{b} to {c}.{d}"
