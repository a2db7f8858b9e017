#!/usr/bin/env bash
# The txmsg demo: start `twistd -n txmsg-echo` and make round trips with the
# `txmsg echo` client. Run through `make demo`, which sets up the virtualenv
# and the servers first.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PORT=${ECHO_PORT:-8007}
say() { printf '\n==> %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
wait_for_log() { # PID LOGFILE PATTERN WHAT
    for _ in $(seq 100); do
        grep -q "$3" "$2" && return 0
        kill -0 "$1" 2>/dev/null || { cat "$2"; echo "$4 did not start" >&2; exit 1; }
        sleep 0.1
    done
    cat "$2"; echo "$4 did not start within 10 s" >&2; exit 1
}
LOG=$(mktemp -t txmsg-echo.XXXXXX.log)

say "Starting the echo server: twistd -n txmsg-echo --listen tcp:$PORT (log: $LOG)"
"$VENV/bin/twistd" -n --pidfile= txmsg-echo --listen "tcp:$PORT" >"$LOG" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
wait_for_log $server "$LOG" "listening on" "the echo server"
grep "listening on" "$LOG" | sed 's/^/   /'

say "One message"
run "$VENV/bin/txmsg" echo "tcp:host=127.0.0.1:port=$PORT" hello

say "Each line of standard input"
printf 'first line\nsecond line\n' | run "$VENV/bin/txmsg" echo "127.0.0.1:$PORT"

say "A server that is not there: one clear line and a non-zero exit"
if "$VENV/bin/txmsg" echo 127.0.0.1:1 hello; then exit 1; else echo "   (exit status $?)"; fi

say "Stopping the echo server with SIGTERM"
kill -TERM $server
trap - EXIT
# After a clean shutdown on SIGTERM, twistd re-raises the signal on itself,
# so its status is 128+15.
status=0; wait $server || status=$?
if { [ $status -eq 0 ] || [ $status -eq 143 ]; } && grep -q "Server Shut Down" "$LOG"; then
    echo "   twistd shut down cleanly (status $status):"
    tail -n 3 "$LOG" | sed 's/^/   /'
else
    cat "$LOG"; echo "twistd exited with status $status" >&2; exit 1
fi
rm -f "$LOG"

# ---------------------------------------------------------------- the worker
WLOG=$(mktemp -t txmsg-worker.XXXXXX.log)
Q=demo_tasks
say "Starting a task worker: twistd -n txmsg-worker --tasks examples.example_tasks --queue $Q --redis ... --name demo-worker (log: $WLOG)"
"$VENV/bin/twistd" -n --pidfile= txmsg-worker --tasks examples.example_tasks --queue "$Q" \
    --redis redis://127.0.0.1:6379/0 --name demo-worker --max-retries 2 >"$WLOG" 2>&1 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null || true' EXIT
wait_for_log $worker "$WLOG" "Consuming $Q" "the worker"
grep -E "Worker demo-worker consuming|Consuming $Q" "$WLOG" | sed 's/^/   /'

say "A task and its result"
run "$VENV/bin/txmsg" send add 2 3 --queue "$Q" --wait

say "A flaky task: fails once (ConnectionError), waits 1 s in the broker's delay levels, succeeds"
run "$VENV/bin/txmsg" send charge order-1 30 --queue "$Q" --wait

say "200 tasks at once (results to /dev/null, progress on stderr)"
run "$VENV/bin/txmsg" send add 1 1 --queue "$Q" --count 200 --wait >/dev/null

say "A task that fails with ValueError (bad input: not retried by default) goes to the dead letters at once"
if run "$VENV/bin/txmsg" send charge order-2 --queue "$Q" --wait -- -1; then exit 1; fi

say "The worker roster and the control channel (Redis)"
run "$VENV/bin/txmsg" workers
run "$VENV/bin/txmsg" control demo-worker ping

say "Dead letters, with the reason in their headers"
run "$VENV/bin/txmsg" dead-letters "$Q"
run "$VENV/bin/txmsg" dead-letters "$Q" --purge

say "Stopping the worker over its control channel"
run "$VENV/bin/txmsg" control demo-worker shutdown
trap - EXIT
if wait $worker && grep -q "Server Shut Down" "$WLOG"; then
    echo "   the worker drained and exited with status 0"
else
    cat "$WLOG"; echo "the worker did not stop cleanly" >&2; exit 1
fi
rm -f "$WLOG"
