#!/usr/bin/env bash
# Create the virtualenv (default .venv) and install txmsg into it the way a
# user would (a regular, non-editable install, so the twistd plugins are
# registered), plus the test and benchmark peers. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
say() { printf '==> %s\n' "$*"; }
# The machine-wide pip configuration may name local mirrors that do not exist;
# pip warns about each of them on every call. Keep the output readable.
quiet_pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2); }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "txmsg needs Python 3.10 or newer; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "Creating virtualenv $VENV with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv "$VENV"
    quiet_pip install --quiet --upgrade pip setuptools wheel
else
    say "Using virtualenv $VENV"
fi
say "Installing txmsg and its test peers into $VENV"
# Every extra, so that no unit test skips for a missing optional package.
# setuptools builds into build/ and never cleans it: a module deleted or moved
# in the checkout would still be installed from there.
rm -rf build
quiet_pip install --quiet --upgrade ".[msgpack,testing]" -r requirements-dev.txt
# Wheel installs never regenerate Twisted's plugin cache; do it once here so
# twistd does not try (and fail) to write it at run time.
"$VENV/bin/python" -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
say "txmsg $("$VENV/bin/python" -c 'import txmsg; print(txmsg.__version__)') installed; twistd plugins: $("$VENV/bin/twistd" --help | grep -o 'txmsg-[a-z]*' | sort -u | tr '\n' ' ')"
