#!/bin/sh
# Lab image only: every second, one line appended to the shared directory: this boot, its
# uptime, MemAvailable (kB) and the PSS (kB, smaps_rollup) of each process in a clgw-* unit as
# unit/command/pid=kB. Builtins only (no process started per sample): it must not weigh on
# what it measures.
out=/run/clgw-e2e/memory.log
read -r boot < /proc/sys/kernel/random/boot_id
while :; do
  read -r up rest < /proc/uptime
  line="boot=$boot up=$up"
  while read -r k v u; do
    if [ "$k" = MemAvailable: ]; then line="$line MemAvailable=$v"; break; fi
  done < /proc/meminfo
  for d in /proc/[0-9]*; do
    cg=; read -r cg 2>/dev/null < "$d/cgroup"
    case "$cg" in */clgw-lab-*) continue ;; */system.slice/clgw-*.service) ;; *) continue ;; esac
    unit=${cg##*/}; unit=${unit%.service}
    comm=; read -r comm 2>/dev/null < "$d/comm"
    # One word: a command's name may hold spaces ('tmux: server').
    set -f; set -- $comm; IFS=_; comm="$*"; unset IFS; set +f
    pss=
    while read -r k v u; do
      if [ "$k" = Pss: ]; then pss=$v; break; fi
    done 2>/dev/null < "$d/smaps_rollup"
    [ -n "$pss" ] && line="$line $unit/$comm/${d#/proc/}=$pss"
  done
  echo "$line" >> "$out"
  sleep 1
done
