#!/usr/bin/env python3
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The seed program C{event_drive.py} / C{event_run.py} rebuilt on
L{txmsg.events.EventRegistry}.

The seed kept a list of handler classes and a blocking C{run()} that
instantiated each and called C{execute()}.  Here the classes are registered
for an event name, and the reactor delivers the event to them, in
registration order, on its next turn.

Run from the repository root: C{python examples/event_drive.py}
"""

from twisted.internet import task

from txmsg.events import BaseHandler, Event, EventRegistry


class MyHandler(BaseHandler):
    """The seed's first custom handler."""

    def execute(self, event: Event) -> None:
        print("event-drive execute MyHandler")


class YourHandler(BaseHandler):
    """The seed's second custom handler (its typo kept, to print the same lines)."""

    def execute(self, event: Event) -> None:
        print("event-drive ezecute YourHandler")


def main(reactor):
    registry = EventRegistry(reactor)
    registry.add("run", MyHandler)  # event_drive.event_list.append(MyHandler)
    registry.add("run", YourHandler)
    d = registry.dispatch("run")  # event_drive.run()
    d.addCallback(lambda result: None if result.succeeded else result.failures)
    return d


if __name__ == "__main__":
    task.react(main)
