# -*- test-case-name: txmsg.test.test_epollreactor -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The old name of L{txmsg.net.epollreactor}, kept for one release: import
from C{txmsg.net.epollreactor} instead (C{twistd -r txmsg-epoll} is
unchanged).
"""

from txmsg.net.epollreactor import LeanEPollReactor, install, install_unless_chosen

__all__ = ["LeanEPollReactor", "install", "install_unless_chosen"]
