# -*- test-case-name: txmsg.test.test_writethrough -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The old name of L{txmsg.net.transport}, kept for one release: import from
C{txmsg.net.transport} instead.
"""

from txmsg.net.transport import *  # noqa: F403
from txmsg.net.transport import __all__  # noqa: F401
