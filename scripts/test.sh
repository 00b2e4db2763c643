#!/usr/bin/env bash
# Set up .venv (and Debian's chromium for the browser test) if needed, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# tests/test_ui_browser.py drives the UI in Debian's chromium (Playwright never downloads a browser of its own)
if [ ! -x /usr/bin/chromium ] && [ -z "${DPODIFF_CHROMIUM:-}" ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
fi
exec .venv/bin/python -m pytest "$@"
