#!/bin/sh
# Container entrypoint. For the engine in a Kubernetes StatefulSet, turns the pod name into
# timely's process index and writes the hostfile of the whole cluster, then runs the command.
#
#   POD_NAME=iot-etl-engine-2 (the StatefulSet ordinal is the suffix) -> -p 2
#   TIMELY_PROCESSES=3, HEADLESS_SERVICE=iot-etl-engine, POD_NAMESPACE=iot, TIMELY_PORT=2101
#     -> hostfile lines iot-etl-engine-<i>.iot-etl-engine.iot.svc.cluster.local:2101
#
# Outside a StatefulSet (no POD_NAME) the command runs unchanged.
set -eu

if [ "${1:-}" = "dataflow" ] && [ -n "${POD_NAME:-}" ]; then
  shift
  ordinal="${POD_NAME##*-}"
  case "$ordinal" in
    ''|*[!0-9]*) echo "entrypoint: cannot take a process index from POD_NAME=$POD_NAME (expected <name>-<ordinal>)" >&2; exit 2 ;;
  esac
  processes="${TIMELY_PROCESSES:?set TIMELY_PROCESSES to the StatefulSet replicas}"
  service="${HEADLESS_SERVICE:?set HEADLESS_SERVICE to the headless Service name}"
  namespace="${POD_NAMESPACE:-default}"
  port="${TIMELY_PORT:-2101}"
  if [ "$ordinal" -ge "$processes" ]; then
    echo "entrypoint: ordinal $ordinal is not below TIMELY_PROCESSES=$processes" >&2; exit 2
  fi
  hostfile="${HOSTFILE_PATH:-/tmp/timely-hosts.txt}"
  statefulset="${POD_NAME%-*}"
  : > "$hostfile"
  i=0
  while [ "$i" -lt "$processes" ]; do
    echo "$statefulset-$i.$service.$namespace.svc.cluster.local:$port" >> "$hostfile"
    i=$((i + 1))
  done
  exec dataflow -n "$processes" -p "$ordinal" -h "$hostfile" "$@"
fi

exec "$@"
