#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests and for a developer.
#
#   scripts/slurm.sh start [DIR]    start munged, slurmctld and slurmd (idempotent)
#   scripts/slurm.sh stop  [DIR]    stop them (by pid)
#   scripts/slurm.sh status [DIR]   exit 0 when the node accepts jobs
#   scripts/slurm.sh restart-controller [DIR]   (re)start slurmctld only (fault tests)
#   scripts/slurm.sh stop-controller [DIR]      stop slurmctld only (fault tests)
#
# DIR (default /var/tmp/spe-slurm) holds the state, spool, logs and pid files. The config
# is written to /etc/slurm/slurm.conf too, because snakemake-executor-plugin-slurm drops
# SLURM_CONF before its inner srun; a config there that this script did not write is
# never overwritten. Needs root and Debian's slurm-wlm and munge (scripts/install-test-deps.sh).
# Nothing sleeps blindly: every wait polls a readiness check until a deadline.
set -euo pipefail

cmd="${1:-}"
DIR="${2:-/var/tmp/spe-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by spe scripts/slurm.sh"
NODE="$(hostname -s)"

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit="$1" what="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "slurm.sh: timed out after ${limit}s waiting for ${what}" >&2
      tail -n 20 "$DIR"/log/*.log >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
  if [[ -e "$CONF" ]] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm.sh: $CONF exists and was not written by this script; refusing" >&2
    exit 1
  fi
  mkdir -p "$DIR"/{state,spool,log,run} /etc/slurm
  cat >"$CONF.tmp" <<EOF
$MARK (state in $DIR)
ClusterName=spe-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MinJobAge=300
DefMemPerCPU=500
KillWait=5
ReturnToService=2
SlurmdTimeout=30
MpiDefault=none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=8 RealMemory=8000 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 0644 "$CONF.tmp"  # every job account reads it, whatever umask started this script
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  if pgrep -x munged >/dev/null; then return; fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  [[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; }
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 "munged" bash -c 'munge -n | unmunge'
}

node_ready() { sinfo -h -n "$NODE" -o %T | grep -Eq '^(idle|mixed|allocated)'; }

start() {
  write_conf
  start_munge
  if ! alive "$DIR/run/slurmctld.pid"; then
    /usr/sbin/slurmctld -i
  fi
  wait_for 30 "slurmctld" scontrol ping
  if ! alive "$DIR/run/slurmd.pid"; then
    /usr/sbin/slurmd
  fi
  wait_for 30 "the node to be idle" node_ready
  scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  echo "slurm: up (node $NODE, state in $DIR)"
}

stop_pid() {  # stop_pid PIDFILE
  alive "$1" || return 0
  local pid; pid="$(cat "$1")"
  kill "$pid" 2>/dev/null || true
  wait_for 30 "pid $pid to exit" bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
}

stop() {
  stop_pid "$DIR/run/slurmd.pid"
  stop_pid "$DIR/run/slurmctld.pid"
  echo "slurm: stopped"
}

restart_controller() {
  stop_pid "$DIR/run/slurmctld.pid"
  start_controller
}

start_controller() {
  alive "$DIR/run/slurmctld.pid" && return 0
  /usr/sbin/slurmctld
  wait_for 30 "slurmctld" scontrol ping
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) node_ready ;;
  restart-controller) restart_controller ;;
  stop-controller) stop_pid "$DIR/run/slurmctld.pid" ;;
  *) echo "usage: $0 start|stop|status|restart-controller [DIR]" >&2; exit 2 ;;
esac
