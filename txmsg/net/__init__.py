# -*- test-case-name: txmsg.test.test_writethrough -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Bytes on the wire, faster: txmsg's write-through TCP transport and its lean
epoll reactor.

This package is the one place in txmsg that touches Twisted's private
internals; everything else uses Twisted's public API.  Each fast path is
switched on only for a Twisted release inside the tested range
(L{txmsg.net._versions}) and falls back to Twisted's standard code
otherwise.

  - L{txmsg.net.transport}: C{server_endpoint} and C{client_reactor}, the
    public entry points (also importable as C{txmsg.transport});
  - L{txmsg.net.epollreactor}: the lean epoll reactor (also importable as
    C{txmsg.epollreactor}; C{twistd -r txmsg-epoll});
  - L{txmsg.net._writethrough}: the transports themselves;
  - L{txmsg.net._versions}: the tested Twisted range.
"""
