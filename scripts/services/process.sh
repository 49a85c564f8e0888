# shellcheck shell=bash
# Process helpers shared by the service libraries (kafka.sh, prometheus.sh); sourced by them.
#
#   service_alive PID          true while PID runs (a zombie, exited but not reaped, does not count)
#   service_wait_gone PID [N]  waits up to N tenths of a second (default 100) for PID to exit,
#                              then reaps it if it is a child of this shell
#   service_log_tail FILE      prints the last 40 lines of FILE to stderr

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

service_log_tail() {
  echo "---- last 40 lines of $1 ----" >&2
  tail -n 40 "$1" >&2 2>/dev/null || true
  echo "----" >&2
}
