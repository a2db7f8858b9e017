# -*- test-case-name: txmsg.test.test_schedule_entries -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Periodic tasks: a L{Schedule} of cron and interval entries, fired exactly
once across any number of schedulers by L{SchedulerService}.
"""

from txmsg.schedule.entries import Entry, Schedule, load_schedule
from txmsg.schedule.service import SchedulerService, task_sender
from txmsg.worker.headers import ONCE_HEADER

__all__ = [
    "ONCE_HEADER",
    "Entry",
    "Schedule",
    "SchedulerService",
    "load_schedule",
    "task_sender",
]
