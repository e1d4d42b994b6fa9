#!/usr/bin/env bash
# Start Redis and PostgreSQL for the test suite if nothing listens on their ports yet.
# On a machine where they already run (CI, a developer box) this does nothing.
set -u

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! listening 6379; then
  if command -v redis-server >/dev/null; then
    echo "starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/renderq-redis.log
  else
    echo "no Redis on 127.0.0.1:6379 and no redis-server; the tests will start their own if they can" >&2
  fi
fi

if ! listening 5432; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  else
    echo "no PostgreSQL on 127.0.0.1:5432 and no pg_ctlcluster to start one" >&2
  fi
fi

for _ in $(seq 1 50); do
  listening 5432 && listening 6379 && exit 0
  sleep 0.2
done
exit 0
