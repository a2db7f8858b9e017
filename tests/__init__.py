# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration tests against real servers and processes: C{trial tests}.
"""
