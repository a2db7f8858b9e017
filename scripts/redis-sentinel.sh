#!/usr/bin/env bash
# A private Redis with Sentinel on loopback: 1 master + 1 replica + 3
# Sentinels, for the Sentinel tests and for trying txmsg by hand.
#
#   scripts/redis-sentinel.sh up [DIR]            start everything, wait until the Sentinels agree
#   scripts/redis-sentinel.sh down [DIR]          stop everything and remove DIR
#   scripts/redis-sentinel.sh kill-master [DIR]   SIGKILL the current master (prints its port)
#   scripts/redis-sentinel.sh start PORT [DIR]    start the Redis server of PORT again
#   scripts/redis-sentinel.sh master [DIR]        print the current master's host and port
#
# DIR defaults to $TXMSG_REDIS_SENTINEL_DIR, else .cluster/redis-sentinel in
# the current directory; each server's config, data (AOF on, fsync every
# second), log and pid file live there.  The ports are free loopback ports
# picked at start; the default Redis on 6379 is never touched.  The master's
# name is "txmsg"; failure detection is fast (down-after 1 s).  `up` writes
# DIR/env with TXMSG_REDIS_URL=redis+sentinel://127.0.0.1:S1,.../txmsg/0.
# With $TXMSG_REDIS_PASSWORD the master and replica require it (and the
# Sentinels use it); with $TXMSG_SENTINEL_PASSWORD the Sentinels require
# theirs; both then appear in the URL of DIR/env (a private directory).
set -euo pipefail

CMD=${1:-}
shift || true
ARG=
if [ "$CMD" = start ]; then
    ARG=${1:?port}
    shift
fi
DIR=${1:-${TXMSG_REDIS_SENTINEL_DIR:-$PWD/.cluster/redis-sentinel}}
SERVER=$(command -v redis-server)
CLI=$(command -v redis-cli)
NAME=txmsg

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'redis-sentinel: %s\n' "$*" >&2
    exit 1
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
rcli() { # PORT ARGS...: redis-cli against a Redis server
    REDISCLI_AUTH=${PASSWORD:-} "$CLI" --no-auth-warning -p "$@"
}
scli() { # PORT ARGS...: redis-cli against a Sentinel
    REDISCLI_AUTH=${SENTINEL_PASSWORD:-} "$CLI" --no-auth-warning -p "$@"
}
wait_ping() { # PORT CLIENT
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$("$2" "$1" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    die "nothing answers on 127.0.0.1:$1; see $DIR/$1.log"
}
start_redis() { # PORT
    "$SERVER" "$DIR/$1.conf"
    wait_ping "$1" rcli
}
stop_port() { # PORT
    local pid
    [ -f "$DIR/$1.pid" ] || return 0
    pid=$(cat "$DIR/$1.pid")
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$DIR/$1.pid"
}
master() {
    scli "$SENTINEL1" sentinel get-master-addr-by-name "$NAME" | tr '\n' ' '
}

case "$CMD" in
up)
    [ ! -f "$DIR/env" ] || die "already set up in $DIR (run: $0 down $DIR)"
    mkdir -p "$DIR"
    MASTER=$(free_port)
    REPLICA=$(free_port)
    S1=$(free_port) S2=$(free_port) S3=$(free_port)
    for p in "$MASTER" "$REPLICA"; do
        mkdir -p "$DIR/data$p"
        cat >"$DIR/$p.conf" <<CONF
bind 127.0.0.1
port $p
daemonize yes
pidfile $DIR/$p.pid
logfile $DIR/$p.log
dir $DIR/data$p
save ""
appendonly yes
appendfsync everysec
CONF
    done
    echo "replicaof 127.0.0.1 $MASTER" >>"$DIR/$REPLICA.conf"
    PASSWORD=${TXMSG_REDIS_PASSWORD:-}
    SENTINEL_PASSWORD=${TXMSG_SENTINEL_PASSWORD:-}
    if [ -n "$PASSWORD" ]; then
        for p in "$MASTER" "$REPLICA"; do
            printf 'requirepass "%s"\nmasterauth "%s"\n' "$PASSWORD" "$PASSWORD" >>"$DIR/$p.conf"
        done
    fi
    for p in "$S1" "$S2" "$S3"; do
        cat >"$DIR/$p.conf" <<CONF
bind 127.0.0.1
port $p
daemonize yes
pidfile $DIR/$p.pid
logfile $DIR/$p.log
dir $DIR
sentinel monitor $NAME 127.0.0.1 $MASTER 2
sentinel down-after-milliseconds $NAME 1000
sentinel failover-timeout $NAME 5000
sentinel parallel-syncs $NAME 1
CONF
        [ -z "$PASSWORD" ] || echo "sentinel auth-pass $NAME \"$PASSWORD\"" >>"$DIR/$p.conf"
        [ -z "$SENTINEL_PASSWORD" ] || echo "requirepass \"$SENTINEL_PASSWORD\"" >>"$DIR/$p.conf"
    done
    {
        printf 'MASTER_PORT=%s\nREPLICA_PORT=%s\n' "$MASTER" "$REPLICA"
        printf 'SENTINEL1=%s\nSENTINEL2=%s\nSENTINEL3=%s\n' "$S1" "$S2" "$S3"
        printf "PASSWORD='%s'\nSENTINEL_PASSWORD='%s'\n" "$PASSWORD" "$SENTINEL_PASSWORD"
        printf "TXMSG_REDIS_URL='redis+sentinel://%s127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s/%s/0%s'\n" \
            "${PASSWORD:+:$PASSWORD@}" "$S1" "$S2" "$S3" "$NAME" \
            "${SENTINEL_PASSWORD:+?sentinel_password=$SENTINEL_PASSWORD}"
        printf 'export TXMSG_REDIS_URL\n'
    } >"$DIR/env"
    trap 'echo "redis-sentinel: start failed, stopping" >&2; for f in "$DIR"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done' ERR
    start_redis "$MASTER"
    start_redis "$REPLICA"
    for p in "$S1" "$S2" "$S3"; do
        "$SERVER" "$DIR/$p.conf" --sentinel
        wait_ping "$p" scli
    done
    # healthy: the replica is in sync and every Sentinel sees the other two
    for ((i = 0; i < 300; i++)); do
        ok=1
        rcli "$REPLICA" info replication | grep -q 'master_link_status:up' || ok=
        for p in "$S1" "$S2" "$S3"; do
            n=$(scli "$p" sentinel master "$NAME" | awk 'prev == "num-other-sentinels" {print; exit} {prev = $0}')
            [ "$n" = 2 ] || ok=
        done
        [ -n "$ok" ] && break
        sleep 0.2
    done
    [ -n "$ok" ] || die "the Sentinels did not all see each other and the replica within 60 s"
    trap - ERR
    say "Redis master 127.0.0.1:$MASTER, replica 127.0.0.1:$REPLICA, Sentinels $S1 $S2 $S3"
    say "Use it: . $DIR/env   (TXMSG_REDIS_URL=redis+sentinel://127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3/$NAME/0)"
    ;;
down)
    [ -d "$DIR" ] || {
        say "nothing in $DIR"
        exit 0
    }
    for f in "$DIR"/*.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    rm -rf "$DIR"
    say "Stopped and removed $DIR"
    ;;
kill-master)
    # shellcheck disable=SC1091
    . "$DIR/env"
    read -r _host port <<<"$(master)"
    stop_port "$port"
    echo "$port"
    ;;
start)
    # shellcheck disable=SC1091
    . "$DIR/env" # the password, for the ping
    start_redis "$ARG"
    say "Started 127.0.0.1:$ARG"
    ;;
master)
    # shellcheck disable=SC1091
    . "$DIR/env"
    master
    echo
    ;;
*)
    echo "usage: $0 up|down|kill-master|master [DIR] | start PORT [DIR]" >&2
    exit 2
    ;;
esac
