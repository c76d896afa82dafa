#!/usr/bin/env bash
# Browser for tests/test_browser.py (issue 13): Debian's chromium at /usr/bin/chromium and the
# playwright package in the venv given as $1 (default .venv). Idempotent: installs only what is
# missing. Never runs `playwright install` (its own browser download cannot be fetched here):
# the test launches /usr/bin/chromium through playwright instead.
#   bash .ci/install_browser.sh .venv
set -euo pipefail
VENV="${1:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "install_browser.sh: no Python at $VENV/bin/python; create the venv first (make install)" >&2
  exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install_browser.sh: need root (or sudo) for apt-get" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "install_browser.sh: installing Debian chromium"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! "$VENV/bin/python" -c "import playwright.sync_api" 2>/dev/null; then
  echo "install_browser.sh: installing playwright into $VENV"
  "$VENV/bin/python" -m pip install --quiet playwright
fi
echo "install_browser.sh: $(/usr/bin/chromium --version 2>/dev/null | head -n1), playwright $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("playwright"))')"
