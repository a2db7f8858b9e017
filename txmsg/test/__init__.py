# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Unit tests for txmsg: C{trial txmsg}.
"""
