#!/usr/bin/env bash
# Make sure Debian's chromium and chromedriver are installed: the dashboard's
# end-to-end test (tests/test_dashboard_browser.py) drives them with
# selenium. Returns at once when both are there; otherwise installs them with
# apt-get, without the desktop packages chromium recommends (systemd, printing,
# samba...), which a headless browser does not need.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
say "apt-get install chromium chromium-driver (for the dashboard's browser test)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-liberation >/dev/null
say "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium: not runnable')"
