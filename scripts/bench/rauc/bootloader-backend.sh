#!/bin/sh
# RAUC's custom bootloader backend for the benchmark (system.conf: bootloader=custom). RAUC calls
#   get-primary | set-primary BOOTNAME | get-state BOOTNAME | set-state BOOTNAME good|bad
# and this keeps the answers as small files in $CLGW_BENCH_RAUC_STATE (set on `rauc service`),
# which is all a bootloader's environment would hold. Slot A is primary and good until told else.
set -eu
state=${CLGW_BENCH_RAUC_STATE:?CLGW_BENCH_RAUC_STATE is not set}
case "${1:-}" in
  get-primary) cat "$state/primary" 2>/dev/null || echo A ;;
  set-primary) printf '%s\n' "$2" >"$state/primary" ;;
  get-state) cat "$state/state.$2" 2>/dev/null || echo good ;;
  set-state) printf '%s\n' "$3" >"$state/state.$2" ;;
  get-current) echo A ;;
  *) echo "bootloader-backend.sh: unknown command '${1:-}'" >&2; exit 1 ;;
esac
