#!/usr/bin/env bash
# The alert tests (tests/streamgate/test_alerts.py) run Debian's promtool (package prometheus,
# 2.42) on deploy/prometheus/: `promtool check rules|config` and `promtool test rules`. Install it
# when missing and we may (root with apt-get: about 10 s here); otherwise say so, and those tests
# skip with this reason.
set -uo pipefail
command -v promtool >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's prometheus (promtool) for the alert tests…"
  apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; }
fi
command -v promtool >/dev/null ||
  echo "promtool is not installed and could not be (need root and apt-get): alert tests will be skipped."
exit 0
