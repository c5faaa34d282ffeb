#!/bin/bash
# server_measure.sh --server-pids "PIDS" [--pss-interval SEC] -- COMMAND [ARGS...]
#
# Runs COMMAND (a load generator that prints one key=value line on stdout)
# while measuring the server's process tree (PIDS and all descendants, see
# proc_acct.sh): CPU time between just before and just after COMMAND, the
# peak PSS sum and process count sampled every SEC (default 0.5) during it,
# and the share of the machine's CPU that went to neither the server nor
# COMMAND.  Prints COMMAND's stdout, then one line:
#   server_measure server_cpu_ms=N pss_kib_max=N procs_max=N other_cpu_pct=N
# Exit status: COMMAND's.  Starts only COMMAND and stops nothing else.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=proc_acct.sh
. "$here/proc_acct.sh"
pids="" interval=0.5
while [ $# -gt 0 ]; do
    case "$1" in
    --server-pids) pids=$2; shift 2 ;;
    --pss-interval) interval=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "server_measure: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
read -r -a roots <<< "$pids"
[ ${#roots[@]} -gt 0 ] || { echo "server_measure: --server-pids needed" >&2; exit 2; }
tmp=$(mktemp -d /tmp/server_measure.XXXXXX)
lp=""
cleanup() { if [ -n "$lp" ] && kill -0 "$lp" 2>/dev/null; then kill -TERM "$lp" 2>/dev/null || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
hz=$(getconf CLK_TCK)
cpu0=$(tree_ticks "${roots[@]}")
read -r sb0 st0 < <(sys_ticks)
"$@" > "$tmp/out" &
lp=$!
pmax=0 nmax=0
while kill -0 "$lp" 2>/dev/null; do
    read -r k n < <(tree_pss "${roots[@]}")
    [ "$k" -gt "$pmax" ] && pmax=$k
    [ "$n" -gt "$nmax" ] && nmax=$n
    sleep "$interval"
done
rc=0; wait "$lp" || rc=$?
lp=""
cpu1=$(tree_ticks "${roots[@]}")
read -r sb1 st1 < <(sys_ticks)
cat "$tmp/out"
ccpu=$(tr ' ' '\n' < "$tmp/out" | awk -F= '$1 == "client_cpu_s" { print $2; exit }')
awk -v c0="$cpu0" -v c1="$cpu1" -v hz="$hz" -v pm="$pmax" -v nm="$nmax" -v b="$((sb1 - sb0))" \
    -v t="$((st1 - st0))" -v cc="${ccpu:-0}" 'BEGIN {
    s = c1 - c0; o = b - s - cc * hz; if (o < 0) o = 0
    printf "server_measure server_cpu_ms=%.0f pss_kib_max=%d procs_max=%d other_cpu_pct=%.0f\n",
        s * 1000 / hz, pm, nm, (t > 0 ? 100 * o / t : 0)
}'
exit "$rc"
