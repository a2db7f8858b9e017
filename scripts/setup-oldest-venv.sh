#!/usr/bin/env bash
# Create .venv-oldest (or $OLDEST_VENV): txmsg installed with the OLDEST
# Twisted that setup.cfg allows (its `Twisted[tls] >= X.Y` line, pinned to
# X.Y.0), so the unit suite also runs on that release.  .venv (make venv) has
# the newest.  Idempotent: a venv that already has that Twisted is reused
# and only txmsg is reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${OLDEST_VENV:-.venv-oldest}
PYTHON=${PYTHON:-python3}
say() { printf '==> %s\n' "$*"; }
quiet_pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2); }

minimum=$(sed -n 's/^ *Twisted\[tls\] *>= *\([0-9][0-9.]*\).*/\1/p' setup.cfg)
if [ -z "$minimum" ]; then
    echo "setup.cfg names no 'Twisted[tls] >= X.Y' requirement" >&2
    exit 1
fi
case $minimum in
    *.*.*) oldest=$minimum ;;
    *) oldest=$minimum.0 ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
    say "Creating virtualenv $VENV with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv "$VENV"
    quiet_pip install --quiet --upgrade pip setuptools wheel
fi
say "Installing txmsg with Twisted $oldest (the oldest setup.cfg allows) into $VENV"
rm -rf build  # a stale build/ would install moved modules too
quiet_pip install --quiet --upgrade "Twisted[tls]==$oldest" ".[msgpack,testing]" -r requirements-dev.txt
"$VENV/bin/python" -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
say "$VENV: Twisted $("$VENV/bin/python" -c 'import twisted; print(twisted.__version__)')"
