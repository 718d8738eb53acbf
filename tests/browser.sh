#!/usr/bin/env bash
# The browser tests drive Debian's chromium: install it when it is missing and we may
# (root with apt-get); otherwise say so, and tests/web skips with this reason.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium for the browser tests…"
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "chromium is not installed and could not be (need root and apt-get): browser tests will be skipped."
fi
exit 0
