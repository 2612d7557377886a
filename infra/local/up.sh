#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and NATS (JetStream) answer on their default ports, starting them
# (and installing Debian's packages, as root) when they do not. Never stops anything.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
source "$(dirname "$0")/packages.sh"
wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
  say "$2 did not start on port $1"; return 1
}

if ! port_open 5432; then
  need_pkg pg_ctlcluster postgresql
  version=$(ls /etc/postgresql | sort -V | tail -1)
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Local development only: trust loopback, as the default DATABASE_URL has no password.
  if [ -w "$hba" ] && ! grep -q '^# session-platform' "$hba"; then
    sed -i '1i # session-platform: trust loopback for local development\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
fi

if ! port_open 6379; then
  need_pkg redis-server redis-server
  mkdir -p /var/lib/redis /var/log/redis
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
fi

if ! port_open 4222; then
  need_pkg nats-server nats-server
  mkdir -p /var/lib/nats-server
  say "starting NATS with JetStream"
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
fi
say "PostgreSQL :5432, Redis :6379, NATS :4222 are up"
