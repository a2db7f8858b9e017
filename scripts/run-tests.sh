#!/usr/bin/env bash
# Run every txmsg test: `trial txmsg` (unit) on the newest Twisted (.venv)
# and on the oldest one setup.cfg allows (.venv-oldest, built by
# scripts/setup-oldest-venv.sh), then `trial tests` (integration, against the
# real Redis and RabbitMQ). Fails when a suite fails, runs no test, or (in CI)
# skips any test; in CI a plain `pip install .` must pass `trial txmsg` too. TXMSG_SKIP_OLDEST=1 skips the oldest-Twisted run.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
status=0
total_passed=0
total_failed=0

run_suite() { # NAME PACKAGE TRIAL-COMMAND...
    local name=$1 package=$2 out ran passed failed skipped
    shift 2
    out=$(mktemp)
    printf '\n==> %s tests: %s %s\n' "$name" "${*#$VENV/bin/}" "$package"
    "$@" --temp-directory="_trial_temp_$package" "$package" 2>&1 | tee "$out"
    local rc=${PIPESTATUS[0]}
    ran=$(grep -oE '^Ran [0-9]+ test' "$out" | grep -oE '[0-9]+' | tail -1)
    passed=$(grep -oE 'successes=[0-9]+' "$out" | grep -oE '[0-9]+' | tail -1)
    skipped=$(grep -oE 'skips=[0-9]+' "$out" | grep -oE '[0-9]+' | tail -1)
    failed=$(( ${ran:-0} - ${passed:-0} - ${skipped:-0} ))
    total_passed=$(( total_passed + ${passed:-0} ))
    total_failed=$(( total_failed + failed ))
    rm -f "$out"
    if [ "${ran:-0}" -eq 0 ]; then
        echo "ERROR: trial $package ran no tests" >&2
        status=1
    elif [ "$rc" -ne 0 ]; then
        echo "ERROR: trial $package failed" >&2
        status=1
    fi
    # Every extra is installed here, so nothing may skip (the plain-install
    # check below is where tests of absent extras skip).
    if [ "${skipped:-0}" -gt 0 ] && [ "${CI:-}" = true ]; then
        echo "ERROR: $skipped $name test(s) skipped; in CI they must run" >&2
        status=1
    fi
}

printf '\n==> lint: ruff check, ruff format --check and mypy\n'
if "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check --quiet .; then
    echo "lint: clean"
else
    echo "ERROR: lint failed (fix with: $VENV/bin/ruff check --fix . && $VENV/bin/ruff format .)" >&2
    status=1
fi
if "$VENV/bin/mypy"; then
    echo "typecheck: clean"
else
    echo "ERROR: mypy found type errors (configuration: pyproject.toml [tool.mypy])" >&2
    status=1
fi

# The unit tests run against the installed txmsg (as a user would run them);
# the integration tests live in the checkout's top-level tests/ package, which
# `python -m` puts on the path (the trial script alone would not find it).
run_suite unit txmsg "$VENV/bin/trial"
# The same unit suite on the oldest Twisted setup.cfg allows: txmsg's fast
# paths use Twisted internals, gated on a tested range of releases
# (txmsg/net/_versions.py); a release that breaks them fails here.
if [ "${TXMSG_SKIP_OLDEST:-}" != 1 ]; then
    OLDEST_VENV=${OLDEST_VENV:-.venv-oldest}
    if OLDEST_VENV=$OLDEST_VENV scripts/setup-oldest-venv.sh; then
        run_suite "unit (oldest Twisted)" txmsg "$OLDEST_VENV/bin/trial"
    else
        echo "ERROR: could not build $OLDEST_VENV" >&2
        status=1
    fi
fi
run_suite integration tests "$VENV/bin/python" -m twisted.trial
# In CI (or when asked), also check that a plain `pip install .` passes `trial
# txmsg` (optional packages missing: their tests skip).  About two minutes.
if [ "${CI:-}" = true ] || [ "${CHECK_PLAIN_INSTALL:-}" = 1 ]; then
    printf '\n==> plain install: pip install . (no extras) and trial txmsg\n'
    if ! scripts/check-plain-install.sh; then
        echo "ERROR: trial txmsg fails after a plain pip install" >&2
        status=1
    fi
fi
printf '\n'
echo "tests: $total_passed passed, $total_failed failed"
exit $status
