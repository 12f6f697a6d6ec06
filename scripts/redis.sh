#!/usr/bin/env bash
# A throw-away Redis for development and tests: loopback only, no persistence.
#
# Usage: scripts/redis.sh start|stop|status DIR PORT [REDIS-SERVER OPTION...]
#   start   run redis-server on 127.0.0.1:PORT in the background (pid in DIR/redis.pid,
#           log in DIR/redis.log) and wait until it answers PING. Idempotent. Options
#           after PORT go to redis-server (e.g. --tls-port P --tls-cert-file F ... for a
#           TLS port beside the plain one the PING checks).
#   stop    stop it by its pid (SIGTERM; SIGKILL after 10 s). Idempotent.
#   status  exit 0 (and print the pid) when it runs and answers PING, else exit 3.
#
# Example: scripts/redis.sh start /tmp/spe-redis 6379
#          SPE_DISPATCHER=celery SPE_REDIS_URL=redis://127.0.0.1:6379/0 spe serve
set -euo pipefail

START_DEADLINE=20  # seconds until a started server must answer PING
STOP_DEADLINE=10   # seconds between SIGTERM and SIGKILL

usage() { echo "usage: $0 start|stop|status DIR PORT [REDIS-SERVER OPTION...]" >&2; exit 2; }
(($# >= 3)) || usage
cmd=$1 dir=$2 port=$3
shift 3
extra=("$@")
[[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || { echo "redis.sh: bad port: $port" >&2; exit 2; }
pidfile="$dir/redis.pid"
logfile="$dir/redis.log"

now_ms() { date +%s%3N; }

our_pid() {  # the pid in the pidfile, if that process is still a redis-server
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server* ]] \
    && echo "$pid"
}

answers() {  # PONG from 127.0.0.1:PORT within 2 s
  [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]
}

wait_for() {  # wait_for SECONDS COMMAND...: poll COMMAND until it succeeds or time is up
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@"; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.05
  done
}

gone() {  # exited (a zombie whose parent has not reaped it yet counts as exited)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  [[ ${stat##*) } == Z* ]]
}

start() {
  local pid
  if pid=$(our_pid); then
    wait_for "$START_DEADLINE" answers || { echo "redis.sh: pid $pid does not answer" >&2; exit 1; }
    echo "redis.sh: already running on port $port (pid $pid)"
    return
  fi
  command -v redis-server >/dev/null || { echo "redis.sh: redis-server is not installed (scripts/install-test-deps.sh)" >&2; exit 1; }
  mkdir -p "$dir"
  setsid redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$dir" "${extra[@]}" </dev/null >>"$logfile" 2>&1 &
  pid=$!
  echo "$pid" >"$pidfile"
  if ! wait_for "$START_DEADLINE" answers; then
    echo "redis.sh: redis-server did not answer on port $port within ${START_DEADLINE} s" >&2
    tail -n 20 "$logfile" >&2 || true
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    exit 1
  fi
  echo "redis.sh: running on 127.0.0.1:$port (pid $pid)"
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$pidfile"
    echo "redis.sh: not running"
    return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for "$STOP_DEADLINE" gone "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait_for "$STOP_DEADLINE" gone "$pid" || { echo "redis.sh: pid $pid survived SIGKILL" >&2; exit 1; }
  fi
  rm -f "$pidfile"
  echo "redis.sh: stopped (pid $pid)"
}

status() {
  local pid
  if pid=$(our_pid) && answers; then
    echo "redis.sh: running on 127.0.0.1:$port (pid $pid)"
  else
    echo "redis.sh: not running"
    exit 3
  fi
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
