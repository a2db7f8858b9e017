# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The heavy cluster tests (`make test-cluster`): a private 3-node RabbitMQ
cluster, nodes stopped and restarted under load.  Not part of `make test`.
"""
