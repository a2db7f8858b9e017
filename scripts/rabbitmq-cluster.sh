#!/usr/bin/env bash
# A private 3-node RabbitMQ cluster on loopback, for the cluster tests and
# for trying txmsg against a cluster by hand.
#
#   scripts/rabbitmq-cluster.sh up [DIR]      start 3 nodes, join them, wait until healthy
#   scripts/rabbitmq-cluster.sh down [DIR]    stop every node and remove DIR
#   scripts/rabbitmq-cluster.sh stop-node N [DIR] / start-node N [DIR]   (N = 1, 2, 3)
#   scripts/rabbitmq-cluster.sh kill-node N [DIR]   SIGKILL node N (a crash; start-node N brings it back)
#   scripts/rabbitmq-cluster.sh status [DIR]
#
# DIR defaults to $TXMSG_RABBITMQ_CLUSTER_DIR, else .cluster/rabbitmq in the
# current directory.  Everything lives there: each node's data, logs, config
# and pid file, and a private HOME holding the nodes' own Erlang cookie, so
# the default node (rabbit@localhost on 5672) and its cookie are never
# touched.  Node names are txmsgc<N>-<token>@localhost; the AMQP and
# distribution ports are free loopback ports picked at start.  `up` writes
# DIR/env (shell syntax) with TXMSG_AMQP_URL holding the three URLs, and
# NODE<N>, AMQP_PORT<N>; source it to use the cluster.  The nodes re-send an
# unconfirmed at-least-once dead letter after $TXMSG_DLX_CONFIRM_TIMEOUT_MS
# (default 10000; RabbitMQ's own default is 180000).
set -euo pipefail

CMD=${1:-}
shift || true
NODE_ARG=
case "$CMD" in
stop-node | start-node | kill-node)
    NODE_ARG=${1:?node number 1, 2 or 3}
    shift
    ;;
esac
DIR=${1:-${TXMSG_RABBITMQ_CLUSTER_DIR:-$PWD/.cluster/rabbitmq}}
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
[ -x "$SERVER" ] || SERVER=$(command -v rabbitmq-server)
[ -x "$CTL" ] || CTL=$(command -v rabbitmqctl)

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'rabbitmq-cluster: %s\n' "$*" >&2
    exit 1
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

node_env() { # N: export the RABBITMQ_* variables of node N
    local n=$1 d="$DIR/node$1"
    export HOME="$DIR/home"
    export RABBITMQ_NODENAME="$(eval echo "\$NODE$n")"
    export RABBITMQ_DIST_PORT="$(eval echo "\$DIST_PORT$n")"
    export RABBITMQ_MNESIA_BASE="$d/mnesia"
    export RABBITMQ_LOG_BASE="$d/log"
    export RABBITMQ_PID_FILE="$d/pid"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
    export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
}

ctl() { # N args...: rabbitmqctl against node N
    local n=$1
    shift
    (node_env "$n" && "$CTL" -n "$RABBITMQ_NODENAME" "$@")
}

start_node() { # N
    local n=$1
    (
        node_env "$n"
        setsid "$SERVER" >"$DIR/node$n/server.out" 2>&1 </dev/null &
    )
    ctl "$n" wait "$DIR/node$n/pid" --timeout 120 >/dev/null ||
        die "node $n did not start; see $DIR/node$n/server.out and $DIR/node$n/log"
}

stop_node() { # N
    local n=$1 pid
    [ -f "$DIR/node$n/pid" ] || return 0
    pid=$(cat "$DIR/node$n/pid")
    ctl "$n" stop "$DIR/node$n/pid" >/dev/null 2>&1 || true
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/node$n/pid"
}

wait_healthy() {
    local i n
    for ((i = 0; i < 120; i++)); do
        if [ "$(ctl 1 cluster_status --formatter json 2>/dev/null |
            python3 -c 'import json, sys; print(len(json.load(sys.stdin)["running_nodes"]))' 2>/dev/null)" = 3 ]; then
            for n in 1 2 3; do
                ctl "$n" ping >/dev/null 2>&1 || continue 2
            done
            return 0
        fi
        sleep 1
    done
    die "the cluster did not report 3 running nodes within 120 s"
}

case "$CMD" in
up)
    [ ! -f "$DIR/env" ] || die "a cluster is already set up in $DIR (run: $0 down $DIR)"
    mkdir -p "$DIR/home"
    token=$(python3 -c 'import secrets; print(secrets.token_hex(3))')
    python3 -c 'import secrets; print(secrets.token_hex(16).upper(), end="")' >"$DIR/home/.erlang.cookie"
    chmod 400 "$DIR/home/.erlang.cookie"
    urls=
    : >"$DIR/env"
    for n in 1 2 3; do
        mkdir -p "$DIR/node$n"
        port=$(free_port)
        dist=$(free_port)
        printf 'NODE%s=txmsgc%s-%s@localhost\nAMQP_PORT%s=%s\nDIST_PORT%s=%s\n' \
            "$n" "$n" "$token" "$n" "$port" "$n" "$dist" >>"$DIR/env"
        echo "[]." >"$DIR/node$n/enabled_plugins"
        printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users = none\n' "$port" >"$DIR/node$n/rabbitmq.conf"
        # A quorum queue's at-least-once dead-lettering re-sends a message
        # whose confirm got lost (its target's leader node went down) after
        # this timeout; the default is 180 s (see docs/scaling.md).
        echo "[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, ${TXMSG_DLX_CONFIRM_TIMEOUT_MS:-10000}}]}]." >"$DIR/node$n/advanced.config"
        urls="${urls:+$urls,}amqp://guest:guest@127.0.0.1:$port/%2F"
    done
    printf 'TXMSG_AMQP_URL=%s\nexport TXMSG_AMQP_URL\n' "'$urls'" >>"$DIR/env"
    # shellcheck disable=SC1091
    . "$DIR/env"
    trap 'echo "rabbitmq-cluster: start failed, stopping the nodes" >&2; for n in 3 2 1; do stop_node $n; done' ERR
    for n in 1 2 3; do
        say "Starting $(eval echo "\$NODE$n") (AMQP 127.0.0.1:$(eval echo "\$AMQP_PORT$n"))"
        start_node "$n"
    done
    for n in 2 3; do
        ctl "$n" stop_app >/dev/null
        ctl "$n" join_cluster "$NODE1" >/dev/null
        ctl "$n" start_app >/dev/null
    done
    wait_healthy
    trap - ERR
    say "Cluster is healthy: $NODE1 $NODE2 $NODE3"
    say "Use it: . $DIR/env   (TXMSG_AMQP_URL=$TXMSG_AMQP_URL)"
    ;;
down)
    [ -f "$DIR/env" ] || {
        say "no cluster in $DIR"
        exit 0
    }
    # shellcheck disable=SC1091
    . "$DIR/env"
    for n in 3 2 1; do stop_node "$n"; done
    rm -rf "$DIR"
    say "Cluster stopped and $DIR removed"
    ;;
stop-node | start-node | kill-node)
    [ -f "$DIR/env" ] || die "no cluster in $DIR"
    # shellcheck disable=SC1091
    . "$DIR/env"
    case "$NODE_ARG" in 1 | 2 | 3) ;; *) die "node number must be 1, 2 or 3" ;; esac
    if [ "$CMD" = kill-node ]; then
        kill -9 "$(cat "$DIR/node$NODE_ARG/pid")"
        rm -f "$DIR/node$NODE_ARG/pid"
        say "Killed node $NODE_ARG"
    elif [ "$CMD" = stop-node ]; then
        stop_node "$NODE_ARG"
        say "Stopped node $NODE_ARG"
    else
        start_node "$NODE_ARG"
        say "Started node $NODE_ARG"
    fi
    ;;
status)
    [ -f "$DIR/env" ] || die "no cluster in $DIR"
    # shellcheck disable=SC1091
    . "$DIR/env"
    ctl 1 cluster_status
    ;;
*)
    echo "usage: $0 up|down|status [DIR] | stop-node|start-node|kill-node N [DIR]" >&2
    exit 2
    ;;
esac
