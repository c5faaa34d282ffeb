# shellcheck shell=bash disable=SC2154 # $build, $kv, $mc_*: set by run.sh
# relay_bench.sh - the relay workload of bench/run.sh (sourced by it; uses
# its $build, $here, $kv, and proc_acct.sh).
#
#   relay-1000   BENCH_RELAY_MESSAGES (1000) messages of 4 KiB, submitted
#                with submit_load (STARTTLS + AUTH, 10 sessions) to
#                rcptN@remote.test while nothing listens on the relay port,
#                so that every one is tried once and deferred (connection
#                refused).  Then an smtp-sink starts on the relay port, the
#                queue is flushed (mailctl queue flush / postqueue -f), and
#                the clock runs from the flush until the queue is empty and
#                the sink has counted every message.
#
# The target supplies the directories that hold its queued messages (the
# queue is empty when they hold no file) and shell commands (run with sh -c):
#   settled   exits 0 when N messages are queued, all tried and none in
#             delivery (N is $1)
#   flush     makes every deferred message due now
#   clear     empties the queue of leftovers of earlier runs
# The same is done a second time with BENCH_RELAY_FSYNC_MESSAGES (300)
# messages under perf stat, counting fsync-type syscalls of the server's
# tree (not timed; perf slows nothing measurable, but keeps the timed run
# free of it).

relay_messages=${BENCH_RELAY_MESSAGES:-1000}
relay_fsync_messages=${BENCH_RELAY_FSYNC_MESSAGES:-300}

# relay_fill N SUBPORT OUT: submit N messages for remote recipients.
relay_fill() {
    "$build/bench/submit_load" --host 127.0.0.1 --port "$2" --starttls \
        --auth 'user%d@example.test:pw-user%d' --users 100 --sessions 10 --size 4096 \
        --messages "$1" --to 'rcpt%d@remote.test' --timeout 30 --max-time 120 --quiet > "$3"
}

# relay_settle N SETTLED_CMD: wait (at most 120 s) until the queue is settled.
relay_settle() {
    local t0=$SECONDS
    until sh -c "$2" sh "$1" 2>/dev/null; do
        [ $((SECONDS - t0)) -lt 120 ] || return 1
        sleep 0.5
    done
}

# relay_count DIRS...: files below DIRS (recursively), temp files (".*") not counted.
relay_count() { find "$@" -type f ! -name '.*' 2>/dev/null | wc -l; }

# relay_drain N SINKOUT FLUSH DIRS...: run FLUSH, then poll every 10 ms until
# DIRS hold no message and the sink counted N (or 300 s pass).  Prints
# "elapsed_s=... queued_left=... sink=...": one Python process, so that the
# polling costs the machine little and the end is seen to 10 ms.
relay_drain() {
    python3 - "$@" <<'PY'
import os, re, subprocess, sys, time
n, sinkout, flush, dirs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
def queued():
    return sum(1 for d in dirs for _, _, fs in os.walk(d) for f in fs if not f.startswith("."))
def sink():
    with open(sinkout, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 200))
        m = re.findall(rb"mesg=(\d+)", f.read())
    return int(m[-1]) if m else 0
t0 = time.monotonic()
subprocess.run(["sh", "-c", flush], stdout=subprocess.DEVNULL, check=False)
while True:
    q, s = queued(), sink()
    if (q == 0 and s >= n) or time.monotonic() - t0 > 300:
        break
    time.sleep(0.01)
print("elapsed_s=%.3f queued_left=%d sink=%d" % (time.monotonic() - t0, q, s))
PY
}

# relay_pss_sampler FLAG ROOTS...: the tree's peak PSS and process count,
# sampled every 0.25 s while the file FLAG exists.
relay_pss_sampler() {
    local flag=$1 k np pmax=0 nmax=0
    shift
    while [ -e "$flag" ]; do
        read -r k np < <(tree_pss "$@")
        [ "$k" -gt "$pmax" ] && pmax=$k
        [ "$np" -gt "$nmax" ] && nmax=$np
        sleep 0.25
    done
    echo "pss_kib_max=$pmax procs_max=$nmax"
}

# relay_once N SUBPORT SINKPORT ROOTS QDIRS SETTLED FLUSH CLEAR OUT [PERF_OUT]:
# one fill, flush and drain; "key=value" results in OUT.
relay_once() {
    local n=$1 sub=$2 sinkport=$3 roots=$4 settled=$6 flush=$7 clear=$8 out=$9
    local perf_out=${10:-} sinkout=$out.sink perf_pid="" pss_pid c0 c1 rts qdirs
    read -r -a rts <<< "$roots"
    read -r -a qdirs <<< "$5"
    sh -c "$clear" > /dev/null 2>&1 || true
    if ss -ltnH "sport = :$sinkport" | grep -q .; then
        echo "relay: port $sinkport is in use; the messages could not be held back" >&2
        return 1
    fi
    relay_fill "$n" "$sub" "$out.fill" || echo "relay: submit_load reported failures ($(cat "$out.fill"))" >&2
    if ! relay_settle "$n" "$settled"; then
        echo "relay: the queue did not settle at $n deferred messages (it has $(relay_count "${qdirs[@]}"))" >&2
        return 1
    fi
    smtp-sink -c -u postfix "127.0.0.1:$sinkport" 1024 > "$sinkout" 2>&1 &
    sink_pid=$!
    wait_port "$sinkport" "$sink_pid" || { echo "relay: smtp-sink did not start" >&2; return 1; }
    if [ -n "$perf_out" ]; then
        local ev="" sc plist
        for sc in fsync fdatasync syncfs sync_file_range msync sync; do ev+="${ev:+,}syscalls:sys_enter_$sc"; done
        plist=$(tree_pids "${rts[@]}" | tr ' ' '\n' | grep . | paste -sd,)
        perf stat -x, -e "$ev" -p "$plist" -o "$perf_out" &
        perf_pid=$!
        sleep 1
    fi
    touch "$out.pss"
    relay_pss_sampler "$out.pss" "${rts[@]}" > "$out.pssmax" &
    pss_pid=$!
    c0=$(tree_ticks "${rts[@]}")
    relay_drain "$n" "$sinkout" "$flush" "${qdirs[@]}" > "$out.drain"
    c1=$(tree_ticks "${rts[@]}")
    rm -f "$out.pss"
    wait "$pss_pid" || true
    if [ -n "$perf_pid" ]; then
        sleep 0.5
        kill -INT "$perf_pid"; wait "$perf_pid" || true
    fi
    kill -TERM "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; sink_pid=""
    echo "messages=$n $(cat "$out.drain") $(cat "$out.pssmax")" \
        "server_cpu_ms=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (b - a) * 1000 / hz }')" > "$out"
}

# relay_table TITLE SUBPORT SINKPORT ROOTS QDIRS SETTLED FLUSH CLEAR
relay_table() {
    local title=$1 tmpd fs="-" perf_ok=0
    tmpd=$(mktemp -d /tmp/relay_bench.XXXXXX)
    echo
    echo "### $title: relay"
    echo
    if ! command -v smtp-sink > /dev/null; then
        echo "relay-1000: skipped (no smtp-sink: apt-get install postfix)"
        rm -rf "$tmpd"
        return 0
    fi
    perf stat -e syscalls:sys_enter_fsync -- true > /dev/null 2>&1 && perf_ok=1
    if relay_once "$relay_messages" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$tmpd/timed"; then
        if [ "$perf_ok" = 1 ] && [ "$relay_fsync_messages" -gt 0 ] &&
            relay_once "$relay_fsync_messages" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$tmpd/fs" "$tmpd/perf"; then
            fs=$(awk -F, -v n="$relay_fsync_messages" '$3 ~ /^syscalls:sys_enter_/ && $1 ~ /^[0-9]+$/ { s += $1 }
                END { printf "%.2f", s / n }' "$tmpd/perf")
        fi
        { printf 'relay_bench target="%s" fsyncs_per_msg=%s ' "$title" "$fs"; cat "$tmpd/timed"; } >> "$kv"
    fi
    echo "| workload | msgs/s relayed | p50 ms | p99 ms | server CPU ms/msg | fsyncs/msg | server memory (peak during run) |"
    echo "|---|---|---|---|---|---|---|"
    if [ -f "$tmpd/timed" ]; then
        awk -v label="relay-1000: $relay_messages × 4 KiB queued, flushed to smtp-sink" -v fs="$fs" '
            { for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] } }
            function f(x) { return x >= 100 ? sprintf("%.0f", x) : x >= 10 ? sprintf("%.1f", x) : sprintf("%.2f", x) }
            END {
                r = f(v["messages"] / v["elapsed_s"]) " (" v["messages"] " in " v["elapsed_s"] " s)"
                if (v["queued_left"] > 0 || v["sink"] < v["messages"]) r = r ", unfinished: " v["queued_left"] " queued, sink " v["sink"]
                m = v["pss_kib_max"] > 0 ? sprintf("%.1f MiB, %d procs", v["pss_kib_max"] / 1024, v["procs_max"]) : "n/a"
                printf "| %s | %s | - | - | %s | %s | %s |\n", label, r, f(v["server_cpu_ms"] / v["messages"]), fs, m
            }' "$tmpd/timed"
    else
        echo "| relay-1000 | failed (see above) | | | | | |"
    fi
    echo
    echo "msgs/s relayed: messages ÷ time from the flush until the queue was empty and the sink had"
    echo "counted them all (polled every 10 ms).  CPU: the server's whole process tree in that time."
    echo "fsyncs/msg: perf stat over a separate run of $relay_fsync_messages messages ('-': not counted)."
    rm -rf "$tmpd"
}

# relay_mailcore DIR MAILCTL: relay-1000 against the bench instance in DIR
# (master $mc_pid, submission $mc_sub, relay 127.0.0.1:$mc_sink).
relay_mailcore() {
    local dir=$1 mailctl=$2
    local settled='import json,sys; q=json.load(sys.stdin); sys.exit(not (len(q) == int(sys.argv[1]) and all(r["attempts"] > 0 and r["state"] == "pending" for e in q for r in e["recipients"])))'
    wait_port "$mc_sub" "$mc_pid" || { echo "run.sh: mailcore's submitd is not listening ($dir/master.log)" >&2; return 0; }
    relay_table "mailcore (relayq -> 127.0.0.1:$mc_sink)" "$mc_sub" "$mc_sink" "$mc_pid" \
        "$dir/queue/env" \
        "$mailctl queue list --json | python3 -c '$settled' \"\$1\"" \
        "$mailctl queue flush" "$mailctl queue delete all"
}

# relay_peers POSTFIX_MASTER_PID: relay-1000 against the peers' Postfix
# (submission 10587, relayhost 127.0.0.1:10026).  Its server tree is Postfix's
# master and children (qmgr, smtp, trivial-rewrite, ...); Dovecot only
# authenticates the submissions, before the clock starts.
relay_peers() {
    local etc=$PEERS_DIR/postfix/etc spool=$PEERS_DIR/postfix/spool
    relay_table "peers: Postfix $(postconf -d -h mail_version 2>/dev/null) (smtp -> 127.0.0.1:10026)" \
        "${PEERS_SUBMISSION_PORT:-10587}" "${PEERS_SINK_PORT:-10026}" "$1" \
        "$spool/maildrop $spool/incoming $spool/active $spool/deferred $spool/hold" \
        "[ \"\$(find '$spool/deferred' -type f | wc -l)\" -eq \"\$1\" ] && [ \"\$(find '$spool/maildrop' '$spool/incoming' '$spool/active' -type f | wc -l)\" -eq 0 ]" \
        "postqueue -c '$etc' -f" "postsuper -c '$etc' -d ALL"
}
