#!/usr/bin/env bash
# A plain `pip install .` (no extras, no requirements-dev.txt) must pass its own
# unit tests: tests needing an optional package skip with the reason.  Builds a
# throwaway virtualenv outside the checkout and runs `trial txmsg` there, so the
# checkout's sources are not on the path.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip --disable-pip-version-check install --quiet . \
    2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
cd "$work"
"$work/venv/bin/trial" --temp-directory="$work/_trial_temp" txmsg
