#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis that the suite talks to answer on 127.0.0.1,
# starting them where this machine has them installed. Exits non-zero with a clear message.
set -u

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 40); do listening "$port" && return 0; sleep 0.25; done
  echo "tests/services.sh: $name is not answering on 127.0.0.1:$port" >&2
  return 1
}

if ! listening 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "Starting PostgreSQL..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  else
    echo "PostgreSQL is not running on 127.0.0.1:5432 and is not installed here." >&2
    echo "Start one (trust auth for user root or set DATABASE_URL) and run make test again." >&2
    exit 1
  fi
fi
wait_for PostgreSQL 5432 || exit 1

if ! listening 6379; then
  if command -v redis-server >/dev/null; then
    echo "Starting Redis..."
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  else
    echo "Redis is not running on 127.0.0.1:6379 and is not installed here." >&2
    echo "Start one or set REDIS_URL, then run make test again." >&2
    exit 1
  fi
fi
wait_for Redis 6379 || exit 1
echo "PostgreSQL and Redis are up."
