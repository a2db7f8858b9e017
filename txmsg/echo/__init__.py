# -*- test-case-name: txmsg.test.test_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Echo server and client (the code moved to L{txmsg.echo._server}).
"""

from txmsg.echo._server import *  # noqa: F403
from txmsg.echo._server import __all__  # noqa: F401
