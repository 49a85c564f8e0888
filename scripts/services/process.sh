# shellcheck shell=bash
# Process helpers shared by the service libraries (kafka.sh, prometheus.sh); sourced by them.
#
#   service_alive PID          true while PID runs (a zombie, exited but not reaped, does not count)
#   service_wait_gone PID [N]  waits up to N tenths of a second (default 100) for PID to exit,
#                              then reaps it if it is a child of this shell
#   service_log_tail FILE      prints the last 40 lines of FILE to stderr
#   service_stop NAME PID      SIGTERM, then after 10 s SIGKILL; fails if PID still runs
#   service_wait_ready NAME PID LOG WHAT CHECK...
#                              waits up to 30 s for the command CHECK... to succeed while PID
#                              runs; if PID exits first, or 30 s pass (PID is then killed), it
#                              says so as NAME (WHAT: what it waited for), shows LOG and fails

service_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# (stderr is silenced for the whole block: bash reaps its children on its own and prints
# "Killed" notices at the next command.)
service_wait_gone() {
  local pid=$1 limit=${2:-100} i=0
  {
    while service_alive "$pid"; do
      [ "$i" -lt "$limit" ] || return 1
      sleep 0.1
      i=$((i + 1))
    done
    wait "$pid" || true
  } 2>/dev/null
}

service_wait_ready() {
  local name=$1 pid=$2 log=$3 what=$4 deadline=$((SECONDS + 30))
  shift 4
  until "$@"; do
    if ! service_alive "$pid"; then
      local status=0
      wait "$pid" 2>/dev/null || status=$?
      echo "${name}_start: error: $name exited (status $status) before $what" >&2
      service_log_tail "$log"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "${name}_start: error: $name (pid $pid) did not get to $what within 30 s" >&2
      service_log_tail "$log"
      kill -9 "$pid" 2>/dev/null || true
      service_wait_gone "$pid" 100 || true
      return 1
    fi
    sleep 0.1
  done
}

service_stop() {
  local name=$1 pid=$2
  if service_alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    if ! service_wait_gone "$pid" 100; then
      echo "${name}_stop: $name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
      service_wait_gone "$pid" 100 || { echo "${name}_stop: error: $name (pid $pid) does not exit" >&2; return 1; }
    fi
  else
    wait "$pid" 2>/dev/null || true
  fi
}

service_log_tail() {
  echo "---- last 40 lines of $1 ----" >&2
  tail -n 40 "$1" >&2 2>/dev/null || true
  echo "----" >&2
}
