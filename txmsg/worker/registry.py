# -*- test-case-name: txmsg.test.test_names -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The old name of L{txmsg.worker.roster}, kept for one release ("registry" now
means only L{txmsg.events.EventRegistry}).
"""

from txmsg.worker.roster import *  # noqa: F403
from txmsg.worker.roster import __all__  # noqa: F401
