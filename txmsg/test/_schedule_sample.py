# Copyright (c) txmsg contributors. See LICENSE for details.
"""A schedule module for the scheduler's tests."""

from txmsg.schedule import Schedule

schedule = Schedule(timezone="Europe/Berlin")
schedule.cron("nightly", "30 2 * * *", task="report", args=("daily",))
schedule.every("fast", 1, task="ping", catch_up=True, queue="pings")
