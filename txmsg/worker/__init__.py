# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The task worker: the task envelope, the retry policy and the worker service.
"""
