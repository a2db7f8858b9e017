# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The schedule of the scheduler integration test: one entry every second,
catching up missed ticks, sending C{record_id} to the queue and file named
by the environment (the test sets them, and a unique entry name, for the
scheduler processes).
"""

import os

from txmsg.schedule import Schedule

schedule = Schedule(queue=os.environ.get("TXMSG_TEST_QUEUE", "tasks"))
schedule.every(
    os.environ.get("TXMSG_TEST_ENTRY", "tick"),
    1,
    task="record_id",
    args=(os.environ.get("TXMSG_TEST_OUT", "/dev/null"),),
    catch_up=True,
)
