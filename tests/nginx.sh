#!/usr/bin/env bash
# The nginx tests (tests/streamgate/test_nginx.py) run Debian's nginx on the shipped
# deploy/nginx/ configuration; `make bench` also drives it with wrk (tests/benchmarks/delivery.py).
# Install what is missing when we may (root with apt-get); otherwise say so: the nginx tests
# then skip with this reason, and the delivery benchmark stops.
#   tests/nginx.sh          nginx
#   tests/nginx.sh --bench  nginx and wrk
set -uo pipefail
packages=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || packages+=(nginx)
# envsubst renders the shipped files as the README's deployment steps do (a test compares).
command -v envsubst >/dev/null || packages+=(gettext-base)
if [ "${1:-}" = --bench ] && ! command -v wrk >/dev/null; then
  packages+=(wrk)
fi
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's ${packages[*]} for the nginx tests…"
  apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null 2>&1; }
fi
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "nginx is not installed and could not be (need root and apt-get): nginx tests will be skipped."
fi
exit 0
