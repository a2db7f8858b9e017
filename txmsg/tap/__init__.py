# -*- test-case-name: txmsg.test.test_tap_echo,txmsg.test.test_tap_worker -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
One module per C{twistd} plugin: C{Options} and C{makeService(options)}.
"""
