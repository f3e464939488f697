#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the cluster tests: Debian's slurmctld, slurmd and
# munge, run as root without systemd, all state under one folder.
#
#   scripts/slurm/local-cluster.sh install   the Debian packages (a no-op when present)
#   scripts/slurm/local-cluster.sh start     install, then start munged, slurmctld, slurmd; wait idle
#   scripts/slurm/local-cluster.sh stop      stop every daemon by its pid file
#
# State lives in $SLURM_LOCAL_DIR (default /tmp/infodisent-slurm). `start` on a running cluster
# only checks that it answers.
set -euo pipefail
state=${SLURM_LOCAL_DIR:-/tmp/infodisent-slurm}
conf=/etc/slurm/slurm.conf

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

running() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # slurmd refuses a node that claims more memory than it sees; leave it some slack.
  mem=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 9 / 10))
  mkdir -p /etc/slurm "$state/spool/ctld" "$state/spool/d"
  cat >"$conf" <<EOF
ClusterName=infodisent-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MaxArraySize=10000
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  running munged && return
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
  chmod 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid"
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$state/munged.pid"
}

start() {
  install
  mkdir -p "$state"
  if running slurmctld && running slurmd && sinfo -h >/dev/null 2>&1; then
    echo "local Slurm already running (state in $state)"
    return
  fi
  write_conf
  start_munge
  running slurmctld || slurmctld -c -i
  running slurmd || slurmd -c
  for _ in $(seq 150); do
    if [ "$(sinfo -h -o %t 2>/dev/null)" = idle ]; then
      echo "local Slurm up: node $(hostname -s), $(nproc) CPUs (state in $state)"
      return
    fi
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 0.2
  done
  echo "local Slurm did not become idle within 30 s; logs in $state" >&2
  sinfo >&2 || true
  tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
  exit 1
}

stop() {
  for daemon in slurmd slurmctld munged; do
    if running "$daemon"; then
      pid=$(cat "$state/$daemon.pid")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$state/$daemon.pid"
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
