#!/bin/bash
# smtp_bench.sh - one SMTP intake workload against one server, measured from
# the outside, printed as a row of the project's benchmark table.
#
#   smtp_bench.sh HOST PORT [options]
#
# Load (passed to smtp_load; see smtp_load.c):
#   --sessions N  --messages M  --size BYTES  --per-conn K  --rcpts R
#   --users N  --to ADDR (repeatable)  --from ADDR  --timeout SEC  --max-time SEC
# Server side (all optional; a column without its input prints n/a):
#   --server-pids "PID..."   the server's long-lived root processes (e.g. its
#                            master); every descendant is included, including
#                            ones that fork and exit during the run
#   --server-match REGEX     the same, found with pgrep -f REGEX
#   --delivered-cmd CMD      shell command printing how many messages are in
#                            the mailboxes now (one integer); polled
#   --delivery-wait SEC      wait this long at most for delivery after the
#                            load ends (default 60); gives up earlier after
#                            --delivery-idle SEC without progress (default 15)
#   --fsync-method auto|perf|strace|none   (default auto: perf if its syscall
#                            tracepoints work, else strace)
#   --fsync-messages N       size of the separate fsync-counting run
#                            (default 500, at most M); 0 skips it
# Output:
#   --label TEXT             the workload column (default from the parameters)
#   --row-only               print the table row only (for a table of several)
#   --kv FILE                append the machine-readable result line to FILE
#   --load PATH              the smtp_load binary (default: $SMTP_LOAD, else
#                            smtp_load beside this script or on PATH)
#
# How each column is measured is in bench/README.md.  Needs bash, awk, pgrep;
# perf or strace for fsyncs; root (or the server's user) to read PSS.
# It starts only smtp_load and, for the fsync run, perf or strace, and stops
# only those, by PID.
set -euo pipefail

die() { echo "smtp_bench: $*" >&2; exit 2; }
say() { echo "smtp_bench: $*" >&2; }

[ $# -ge 2 ] || { sed -n '2,35p' "$0" >&2; exit 2; }
HOST=$1 PORT=$2
shift 2

load_args=() sessions=10 messages=1000 size=4096 per_conn=1 rcpts=1
server_pids="" server_match="" delivered_cmd="" delivery_wait=60 delivery_idle=15
fsync_method=auto fsync_messages="" label="" row_only=0 kv_file="" load=${SMTP_LOAD:-}
poll=0.25
while [ $# -gt 0 ]; do
    opt=$1
    [ $# -ge 2 ] || [ "$opt" = --row-only ] || die "$opt needs a value"
    case "$opt" in
    --sessions) sessions=$2 ;;
    --messages) messages=$2 ;;
    --size) size=$2 ;;
    --per-conn) per_conn=$2 ;;
    --rcpts) rcpts=$2 ;;
    --users | --to | --from | --timeout | --max-time) load_args+=("$opt" "$2") ;;
    --server-pids) server_pids=$2 ;;
    --server-match) server_match=$2 ;;
    --delivered-cmd) delivered_cmd=$2 ;;
    --delivery-wait) delivery_wait=$2 ;;
    --delivery-idle) delivery_idle=$2 ;;
    --fsync-method) fsync_method=$2 ;;
    --fsync-messages) fsync_messages=$2 ;;
    --label) label=$2 ;;
    --kv) kv_file=$2 ;;
    --load) load=$2 ;;
    --row-only) row_only=1; shift; continue ;;
    *) die "unknown option $opt" ;;
    esac
    shift 2
done
load_args+=(--host "$HOST" --port "$PORT" --sessions "$sessions" --size "$size"
            --per-conn "$per_conn" --rcpts "$rcpts")
[ -n "$fsync_messages" ] || fsync_messages=500
[ "$fsync_messages" -le "$messages" ] || fsync_messages=$messages
[ -n "$label" ] || label="SMTP $((size / 1024)) KiB, $sessions sessions, $per_conn msg/conn, $rcpts rcpt"
if [ -z "$load" ]; then
    here=$(cd "$(dirname "$0")" && pwd)
    if [ -x "$here/smtp_load" ]; then load=$here/smtp_load; else load=$(command -v smtp_load || true); fi
fi
{ [ -n "$load" ] && [ -x "$load" ]; } || die "smtp_load not found: build it (bench/run.sh does) and pass --load"

tmp=$(mktemp -d /tmp/smtp_bench.XXXXXX)
helper_pid=""
cleanup() {
    # Only what this script started: a tracer left running after an error.
    if [ -n "$helper_pid" ] && kill -0 "$helper_pid" 2>/dev/null; then
        kill -INT "$helper_pid" 2>/dev/null || true
        wait "$helper_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo "${EPOCHREALTIME/,/.}"; }

# ---- the server's processes ----

# "pid ppid cputicks" for every process; cputicks = utime+stime+cutime+cstime.
# Processes that exit are reaped by a parent that is still alive (a master),
# and the kernel then adds their time to that parent's cutime/cstime, so the
# sum over the live tree stays cumulative as processes come and go.
proc_table() {
    # A process may exit between the glob and the read: not an error.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{
        pid = $1; rest = $0
        sub(/^.*\) /, "", rest)       # comm may hold spaces and ")"
        split(rest, f, " ")          # f[1] state, f[2] ppid, f[12..15] u s cu cs
        print pid, f[2], f[12] + f[13] + f[14] + f[15]
    }'
}

# tree ROOTS...: "pid cputicks" for each root still alive and every descendant.
tree() {
    proc_table | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) want[r[i]] = 1 }
        { pid[NR] = $1; pp[$1] = $2; t[$1] = $3 }
        END {
            for (i = 1; i <= NR; i++) if (pid[i] in want) keep[pid[i]] = 1
            do {
                grew = 0
                for (i = 1; i <= NR; i++)
                    if (!(pid[i] in keep) && (pp[pid[i]] in keep)) { keep[pid[i]] = 1; grew = 1 }
            } while (grew)
            for (p in keep) print p, t[p]
        }'
}

# sys_ticks: "busy total" ticks of the whole machine (/proc/stat, all CPUs).
sys_ticks() {
    awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit }' /proc/stat
}

tree_ticks() { tree "$@" | awk '{ s += $2 } END { print s + 0 }'; }
tree_pids() { tree "$@" | awk '{ print $1 }' | sort -n | tr '\n' ' '; }

# tree_pss ROOTS...: "KiB processes" (KiB is 0 when smaps_rollup is unreadable).
tree_pss() {
    local p n=0 kib
    for p in $(tree_pids "$@"); do
        n=$((n + 1))
        cat "/proc/$p/smaps_rollup" 2>/dev/null || true
    done > "$tmp/smaps"
    kib=$(awk '/^Pss:/ { s += $2 } END { print s + 0 }' "$tmp/smaps")
    echo "$kib $n"
}

# Roots for --server-match: matching processes, minus this script's own
# ancestry and children (whose command lines contain the pattern too).
match_roots() {
    local self p
    self=" $$ $(tree_pids $$)"
    p=$$
    while [ "$p" -gt 1 ]; do
        p=$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$p/stat" 2>/dev/null || echo 1)
        self+=" $p"
    done
    for p in $(pgrep -f -- "$1" || true); do
        case "$self " in *" $p "*) ;; *) printf '%s ' "$p" ;; esac
    done
}

read -r -a roots <<< "$server_pids"
if [ -n "$server_match" ]; then read -r -a m <<< "$(match_roots "$server_match")"; roots+=("${m[@]}"); fi
if [ ${#roots[@]} -gt 0 ]; then
    for p in "${roots[@]}"; do [ -d "/proc/$p" ] || die "server process $p does not exist"; done
    say "server processes: $(tree_pids "${roots[@]}")"
else
    say "no --server-pids/--server-match: server columns will be n/a"
fi
hz=$(getconf CLK_TCK)

# ---- delivered-message counting ----

delivered_now() {
    local n
    n=$(sh -c "$delivered_cmd" 2>/dev/null | tail -1 | tr -d ' \t\r') || true
    case "$n" in '' | *[!0-9]*) echo -1 ;; *) echo "$n" ;; esac
}

# kv FILE KEY: a value from a smtp_load result line.
kv() { tr ' ' '\n' < "$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'; }

# run_load MESSAGES OUT: smtp_load in the background while deliveries are
# polled.  Leaves in $tmp/poll: "delivered delivered_at_seconds" (relative to
# the start of the load; -1 -1 without --delivered-cmd) and in $tmp/pss the
# server's PSS right after the load (before waiting for delivery).
run_load() {
    local n=$1 out=$2 base=-1 d=-1 last=-1 t0 t tl lp rc accepted=0 load_end=""
    if [ -n "$delivered_cmd" ]; then
        base=$(delivered_now)
        [ "$base" -ge 0 ] || die "--delivered-cmd did not print a number: $delivered_cmd"
    fi
    t0=$(now)
    "$load" "${load_args[@]}" --messages "$n" --quiet > "$out" 2> "$out.err" &
    lp=$!
    tl=$t0
    while :; do
        if [ -z "$load_end" ] && ! kill -0 "$lp" 2>/dev/null; then
            rc=0; wait "$lp" || rc=$?
            load_end=$(now)
            [ -s "$out" ] || { cat "$out.err" >&2; die "smtp_load failed (exit $rc)"; }
            accepted=$(kv "$out" accepted)
            if [ ${#roots[@]} -gt 0 ]; then tree_pss "${roots[@]}" > "$tmp/pss"; fi
            [ -n "$delivered_cmd" ] || break
        fi
        if [ -n "$delivered_cmd" ]; then
            d=$(delivered_now)
            t=$(now)
            if [ "$d" -ge 0 ] && [ "$((d - base))" -gt "$last" ]; then
                last=$((d - base)); tl=$t
            fi
            if [ -n "$load_end" ]; then
                [ "$last" -ge "$accepted" ] && break
                awk -v t="$t" -v e="$load_end" -v l="$tl" -v w="$delivery_wait" -v i="$delivery_idle" \
                    'BEGIN { exit !(t - e > w || t - l > i) }' && { say "delivery incomplete: $last of $accepted"; break; }
            fi
        fi
        sleep "$poll"
    done
    if [ -n "$delivered_cmd" ]; then
        echo "$last $(awk -v a="$tl" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')" > "$tmp/poll"
    else
        echo "-1 -1" > "$tmp/poll"
    fi
}

# ---- timed run ----

say "timed run: $messages messages, $sessions sessions, $per_conn per connection, $size bytes -> $HOST:$PORT"
[ ${#roots[@]} -eq 0 ] || cpu0=$(tree_ticks "${roots[@]}")
read -r sys_b0 sys_t0 < <(sys_ticks)
run_load "$messages" "$tmp/load"
[ ${#roots[@]} -eq 0 ] || cpu1=$(tree_ticks "${roots[@]}")
read -r sys_b1 sys_t1 < <(sys_ticks)
read -r delivered delivered_s < "$tmp/poll"
# The fsync run below rewrites these; the table reports the timed run's.
mv "$tmp/pss" "$tmp/pss.timed" 2>/dev/null || true
accepted=$(kv "$tmp/load" accepted)
elapsed=$(kv "$tmp/load" elapsed_s)
sed 's/^/smtp_bench: /' "$tmp/load.err" >&2 || true
# CPU used by neither the server nor smtp_load, in % of the machine: other
# jobs (and kernel threads, this script's polling).  Rates are only
# comparable between quiet runs; CPU per message suffers much less.
other_pct=$(awk -v b="$((sys_b1 - sys_b0))" -v t="$((sys_t1 - sys_t0))" -v s="$(( ${cpu1:-0} - ${cpu0:-0} ))" \
    -v c="$(kv "$tmp/load" client_cpu_s)" -v hz="$hz" 'BEGIN { o = b - s - c * hz; if (o < 0) o = 0; printf "%.0f", (t > 0 ? 100 * o / t : 0) }')
if [ ${#roots[@]} -gt 0 ] && [ "$other_pct" -gt 10 ]; then
    say "warning: other processes used ${other_pct}% of the machine's CPU during the run: rates are not from a quiet machine"
fi

# ---- fsync run (separate: tracing slows the server) ----

fsync_total=-1 fsync_accepted=0 fsync_used=none
if [ ${#roots[@]} -gt 0 ] && [ "$fsync_messages" -gt 0 ] && [ "$fsync_method" != none ]; then
    syscalls="fsync fdatasync syncfs sync_file_range msync sync"
    if [ "$fsync_method" = auto ]; then
        if perf stat -e syscalls:sys_enter_fsync -- true >/dev/null 2>&1; then fsync_method=perf
        elif command -v strace >/dev/null; then fsync_method=strace
        else fsync_method=none; say "neither perf (syscall tracepoints) nor strace: no fsync count"; fi
    fi
    read -r -a pids <<< "$(tree_pids "${roots[@]}")"
    case "$fsync_method" in
    perf)
        ev=""; for s in $syscalls; do ev+="${ev:+,}syscalls:sys_enter_$s"; done
        # perf stat -p follows children forked after it attaches (inherit).
        plist=$(IFS=,; echo "${pids[*]}")
        perf stat -x, -e "$ev" -p "$plist" -o "$tmp/trace" &
        helper_pid=$! ;;
    strace)
        pargs=(); for p in "${pids[@]}"; do pargs+=(-p "$p"); done
        strace -f -qq -c -e "trace=${syscalls// /,}" -o "$tmp/trace" "${pargs[@]}" &
        helper_pid=$! ;;
    none) ;;
    *) die "--fsync-method: auto, perf, strace or none" ;;
    esac
    if [ -n "$helper_pid" ]; then
        sleep 1 # let the tracer attach to every process
        kill -0 "$helper_pid" 2>/dev/null || die "$fsync_method failed to attach"
        say "fsync run ($fsync_method): $fsync_messages messages"
        run_load "$fsync_messages" "$tmp/fsload"
        sleep 0.5 # work that follows the last delivery (index updates, unlinks)
        kill -INT "$helper_pid"; wait "$helper_pid" || true; helper_pid=""
        fsync_accepted=$(kv "$tmp/fsload" accepted)
        if [ "$fsync_method" = perf ]; then
            fsync_total=$(awk -F, '$3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ { s += $1 } END { print s + 0 }' "$tmp/trace")
        else
            fsync_total=$(awk -v list=" $syscalls " 'index(list, " " $NF " ") && $4 ~ /^[0-9]+$/ { s += $4 } END { print s + 0 }' "$tmp/trace")
        fi
        fsync_used=$fsync_method
    fi
fi

# ---- the row ----

awk_row() {
    awk -v label="$label" -v acc="$accepted" -v msgs="$messages" -v el="$elapsed" \
        -v dlv="$delivered" -v dlvs="$delivered_s" -v p50="$(kv "$tmp/load" lat_p50_ms)" \
        -v p99="$(kv "$tmp/load" lat_p99_ms)" -v c0="${cpu0:--1}" -v c1="${cpu1:--1}" -v hz="$hz" \
        -v fst="$fsync_total" -v fsa="$fsync_accepted" -v pss="$(cut -d' ' -f1 "$tmp/pss.timed" 2>/dev/null || echo -1)" \
        -v procs="$(cut -d' ' -f2 "$tmp/pss.timed" 2>/dev/null || echo 0)" -v kvmode="$1" -v method="$fsync_used" -v other="$([ ${#roots[@]} -gt 0 ] && echo "$other_pct" || echo -1)" '
    function f(v) { return v >= 100 ? sprintf("%.0f", v) : v >= 10 ? sprintf("%.1f", v) : sprintf("%.2f", v) }
    BEGIN {
        ra = el > 0 ? acc / el : 0
        rd = (dlv >= 0 && dlvs > 0) ? dlv / dlvs : -1
        cpu = (c0 >= 0 && acc > 0) ? (c1 - c0) * 1000 / hz / acc : -1
        fpm = (fst >= 0 && fsa > 0) ? fst / fsa : -1
        if (kvmode) {
            printf "smtp_bench label=\"%s\" accepted=%d messages=%d elapsed_s=%s rate_accepted=%.2f", label, acc, msgs, el, ra
            printf " delivered=%d delivered_s=%s rate_delivered=%.2f lat_p50_ms=%s lat_p99_ms=%s", dlv, dlvs, rd, p50, p99
            printf " server_cpu_ms=%.0f server_cpu_ms_per_msg=%.3f fsync_method=%s fsync_messages=%d", (c0 >= 0 ? (c1 - c0) * 1000 / hz : -1), cpu, method, fsa
            printf " fsyncs=%d fsyncs_per_msg=%.3f pss_kib=%d server_procs=%d other_cpu_pct=%d\n", fst, fpm, pss, procs, other
            exit
        }
        a = f(ra); if (acc < msgs) a = a " (" acc "/" msgs " accepted)"
        d = rd < 0 ? "n/a" : f(rd); if (dlv >= 0 && dlv < acc) d = d " (" dlv "/" acc " delivered)"
        m = (pss > 0) ? sprintf("%.1f MiB PSS, %d procs", pss / 1024, procs) : "n/a"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", label, a, d, f(p50), f(p99),
            cpu < 0 ? "n/a" : f(cpu), fpm < 0 ? "n/a" : f(fpm) " ¹", m
    }'
}

if [ "$row_only" = 0 ]; then
    echo "| workload | msgs/s accepted | msgs/s delivered | p50 ms | p99 ms | server CPU ms/msg | fsyncs/msg | server memory |"
    echo "|---|---|---|---|---|---|---|---|"
fi
awk_row 0
if [ "$row_only" = 0 ] && [ "$fsync_used" != none ]; then
    echo
    echo "¹ counted with $fsync_used in a separate run of $fsync_messages messages (tracing slows the server), not during the timed run."
fi
if [ -n "$kv_file" ]; then
    # smtp_bench's keys, then smtp_load's, each key once.
    { awk_row 1 | tr -d '\n'; tr ' ' '\n' < "$tmp/load" | awk -F= '
        $1 !~ /^(smtp_load|accepted|messages|elapsed_s|rate_accepted|lat_p50_ms|lat_p99_ms)$/ { printf " %s", $0 }
        END { print "" }'; } >> "$kv_file"
fi
