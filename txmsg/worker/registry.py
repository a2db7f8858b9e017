# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The old name of L{txmsg.worker.roster}, kept for one release ("registry" now
means only L{txmsg.events.EventRegistry}).
"""

from txmsg.worker.roster import (
    WORKERS_KEY,
    list_workers,
    register_worker,
    unregister_worker,
    worker_key,
)

__all__ = ["WORKERS_KEY", "list_workers", "register_worker", "unregister_worker", "worker_key"]
