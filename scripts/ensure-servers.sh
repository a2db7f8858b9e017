#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672, guest/guest)
# are running on loopback: start them when installed but stopped, install them
# with apt-get when absent. Idempotent; prints what it does.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
port_open() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))))
PY
}
wait_port() { # PORT SECONDS NAME
    local i
    for ((i = 0; i < $2 * 2; i++)); do
        port_open "$1" && return 0
        sleep 0.5
    done
    echo "$3 did not come up on 127.0.0.1:$1 within $2 s" >&2
    return 1
}
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then
        say "apt-get update"
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if port_open 6379; then
    say "Redis is running on 127.0.0.1:6379"
else
    command -v redis-server >/dev/null || apt_install redis-server
    say "Starting Redis on 127.0.0.1:6379"
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_port 6379 30 Redis
    say "Redis is up"
fi

if port_open 5672; then
    say "RabbitMQ is running on 127.0.0.1:5672"
else
    command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
    say "Starting RabbitMQ (this takes a few seconds)"
    $SUDO rabbitmq-server -detached
    wait_port 5672 120 RabbitMQ
    say "RabbitMQ is up"
fi
