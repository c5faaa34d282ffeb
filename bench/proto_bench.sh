# proto_bench.sh - the IMAP and submission workloads of bench/run.sh (sourced
# by it; uses its $build, $load, $kv, $here, $proto_workloads).
#
#   imap-mix            imap_load, 10 clients, BENCH_IMAP_SECONDS (60) s, over
#                       user0..user{BENCH_IMAP_USERS-1} (50), each with >= 200
#                       messages of 4 KiB in INBOX
#   imap-envelope-10k   imap_load --fetch-envelope-only as user99, whose INBOX
#                       holds >= 10,000 messages of 4 KiB; 30 FETCHes or 60 s
#   imap-idle           idle_hold.py: BENCH_IDLE_SESSIONS (10000) plain sessions
#                       (LOGIN, SELECT INBOX, IDLE) over user0..user99, held;
#                       the server's PSS per session
#   imap-idle-tls       the same over implicit TLS (the IMAPS port)
#   submit-remote       submit_load --starttls --auth, 10 sessions, 4 KiB,
#                       one message per connection, to rcptN@remote.test
#                       (BENCH_SUBMIT_MESSAGES, default 2000, at most 60 s);
#                       an smtp-sink runs on the relay port meanwhile
#   submit-local        the same to userN@example.test (sender = recipient)
#
# Mailboxes are filled through the target's own SMTP port with smtp_load
# (populate), once: a run skips it when the counts are already there.

imap_users=${BENCH_IMAP_USERS:-50}
imap_seconds=${BENCH_IMAP_SECONDS:-60}
submit_messages=${BENCH_SUBMIT_MESSAGES:-2000}
idle_sessions=${BENCH_IDLE_SESSIONS:-10000}
proto_populated=0

# ucount USER: INBOX messages of USER@example.test, via $ucount_cmd.
ucount() { sh -c "$ucount_cmd" sh "$1" 2>/dev/null | tail -1 | tr -dc 0-9; }

# await_count USER N: poll until USER has N messages (no progress for 30 s: give up).
await_count() {
    local u=$1 want=$2 n last=-1 t_last=$SECONDS
    while :; do
        n=$(ucount "$u"); n=${n:-0}
        [ "$n" -ge "$want" ] && { echo "$n"; return 0; }
        if [ "$n" -gt "$last" ]; then last=$n t_last=$SECONDS; fi
        [ $((SECONDS - t_last)) -gt 30 ] && { echo "$n"; return 1; }
        sleep 1
    done
}

populate() {
    local smtp=$1 n need t0=$SECONDS
    if [[ " $proto_workloads " == *" imap-mix "* ]]; then
        n=$(ucount "user$((imap_users - 1))"); n=${n:-0}
        if [ "$n" -lt 200 ]; then
            # Top up to 200 each (the users hold the same number before: one round-robin).
            need=$((200 - n))
            echo "populate: $((imap_users * need)) messages to user0..user$((imap_users - 1)) via SMTP port $smtp" >&2
            "$load" --host 127.0.0.1 --port "$smtp" --sessions 10 --per-conn 10 --size 4096 \
                --messages $((imap_users * need)) --to 'user%d@example.test' --users "$imap_users" \
                --max-time 600 --quiet > /dev/null || echo "populate: smtp_load reported failures" >&2
            proto_populated=1
            await_count "user$((imap_users - 1))" 200 > /dev/null || true
        fi
    fi
    if [[ " $proto_workloads " == *" imap-envelope-10k "* ]]; then
        n=$(ucount user99); n=${n:-0}
        if [ "$n" -lt 10000 ]; then
            need=$((10000 - n))
            echo "populate: $need messages to user99 via SMTP port $smtp" >&2
            "$load" --host 127.0.0.1 --port "$smtp" --sessions 10 --per-conn 10 --size 4096 \
                --messages "$need" --to user99@example.test --users 1 \
                --max-time 600 --quiet > /dev/null || echo "populate: smtp_load reported failures" >&2
            proto_populated=1
            await_count user99 10000 > /dev/null || true
        fi
    fi
    echo "Mailboxes: user0 $(ucount user0), user$((imap_users - 1)) $(ucount "user$((imap_users - 1))"), user99 $(ucount user99) messages in INBOX (populate took $((SECONDS - t0)) s)."
}

# kvget FILE KEY
kvget() { tr ' ' '\n' < "$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'; }

# measure OUT PIDS CMD...: CMD under server_measure.sh; its lines in OUT (+ $kv).
measure() {
    local out=$1 pids=$2 rc=0
    shift 2
    "$here/server_measure.sh" --server-pids "$pids" -- "$@" > "$out" 2> "$out.err" || rc=$?
    sed 's/^/    /' "$out.err" >&2
    { printf 'proto_bench target="%s" ' "$proto_title"; tr '\n' ' ' < "$out"; echo; } >> "$kv"
    return $rc
}

mem() { awk -v k="$1" -v n="$2" 'BEGIN { if (k > 0) printf "%.1f MiB PSS peak, %d procs", k / 1024, n; else print "n/a" }'; }

# proto_tables TITLE SMTP_PORT IMAP_PORT SUBMISSION_PORT SERVER_PIDS UCOUNT_CMD SINK_PORT IMAPS_PORT
proto_tables() {
    local title=$1 smtp=$2 imap=$3 sub=$4 pids=$5 sinkport=$7 imaps=$8 w out tmpd
    ucount_cmd=$6 proto_title=$1
    tmpd=$(mktemp -d /tmp/proto_bench.XXXXXX)
    echo
    echo "### $title: IMAP and submission"
    echo
    populate "$smtp"
    echo
    echo "| workload | rate | p50 ms | p99 ms | server CPU | server memory (peak during run) | failed | other CPU % |"
    echo "|---|---|---|---|---|---|---|---|"
    for w in $proto_workloads; do
        out=$tmpd/$w
        case "$w" in
        imap-mix)
            measure "$out" "$pids" "$build/bench/imap_load" --host 127.0.0.1 --port "$imap" --clients 10 \
                --duration "$imap_seconds" --users "$imap_users" --timeout 30 --max-time $((imap_seconds + 60)) || true
            awk_proto_row "IMAP mix, 10 clients, $imap_users users" "$out" cmds ;;
        imap-envelope-10k)
            measure "$out" "$pids" "$build/bench/imap_load" --fetch-envelope-only --host 127.0.0.1 --port "$imap" \
                --user user99@example.test --pass pw-user99 --count 30 --duration 60 --timeout 60 --max-time 120 || true
            awk_proto_row "FETCH 1:* (FLAGS ENVELOPE), $(kvget "$out" messages) msgs, 1 client" "$out" fetch ;;
        imap-idle | imap-idle-tls)
            local port=$imap tls=""
            [ "$w" = imap-idle-tls ] && port=$imaps tls=--tls
            "$here/idle_hold.py" --host 127.0.0.1 --port "$port" $tls --sessions "$idle_sessions" \
                --server-pids "$pids" --timeout 300 > "$out" 2> "$out.err" || true
            sed 's/^/    /' "$out.err" >&2
            { printf 'proto_bench target="%s" ' "$proto_title"; tr '\n' ' ' < "$out"; echo; } >> "$kv"
            awk_idle_row "IMAP IDLE, $idle_sessions sessions$([ -n "$tls" ] && echo ", implicit TLS")" "$out" ;;
        submit-remote | submit-local)
            local to='rcpt%d@remote.test' sink_out=$tmpd/sink.out
            [ "$w" = submit-local ] && to='user%d@example.test'
            if [ "$w" = submit-remote ] && command -v smtp-sink >/dev/null; then
                # The relay's relay: an smtp-sink on the relay port, started and stopped here by PID.
                smtp-sink -c -u postfix "127.0.0.1:$sinkport" 1024 > "$sink_out" 2>&1 &
                sink_pid=$!
                sleep 0.3
            fi
            measure "$out" "$pids" "$build/bench/submit_load" --host 127.0.0.1 --port "$sub" --starttls \
                --auth 'user%d@example.test:pw-user%d' --users 100 --sessions 10 --size 4096 \
                --messages "$submit_messages" --to "$to" --timeout 30 --max-time 60 || true
            if [ -n "$sink_pid" ]; then
                sleep 2 # let queued mail reach the sink
                kill -TERM "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; sink_pid=""
                sink_n=$(tr '\r' '\n' < "$sink_out" | grep -o '[0-9]\+' | tail -1)
                echo "submit-remote: smtp-sink on 127.0.0.1:$sinkport received ${sink_n:-0} messages during the run + 2 s" > "$out.note"
            fi
            awk_proto_row "submission $([ "$w" = submit-local ] && echo local || echo remote), STARTTLS+AUTH PLAIN, 10 sessions, 4 KiB, 1 msg/conn" "$out" msg ;;
        esac
    done
    echo
    for w in $proto_workloads; do
        [ -f "$tmpd/$w.note" ] && cat "$tmpd/$w.note"
    done
    if [ -f "$tmpd/imap-mix" ]; then
        echo
        echo "IMAP mix per command (send -> tagged reply):"
        echo
        echo "| command | count | failed | p50 ms | p99 ms | max ms | mean ms |"
        echo "|---|---|---|---|---|---|---|"
        local k
        for k in connect login select fetch_env fetch_body store append search logout; do
            awk -v k="$k" '{ for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] } }
                END { if ((k "_n") in v) printf "| %s | %s | %s | %.2f | %.2f | %.2f | %.2f |\n", k, v[k "_n"], v[k "_failed"], v[k "_p50_ms"], v[k "_p99_ms"], v[k "_max_ms"], v[k "_mean_ms"] }' "$tmpd/imap-mix"
        done
        echo "(connect = TCP connect to the greeting; not counted as a command.)"
    fi
    if [ -f "$tmpd/imap-envelope-10k" ]; then
        echo
        echo "FETCH 1:* (FLAGS ENVELOPE): first one $(kvget "$tmpd/imap-envelope-10k" first_fetch_ms) ms, mean $(kvget "$tmpd/imap-envelope-10k" fetch_env_mean_ms) ms over $(kvget "$tmpd/imap-envelope-10k" fetch_env_n) FETCHes."
    fi
    rm -rf "$tmpd"
}

# awk_idle_row LABEL OUT: one table row from idle_hold.py's line.
awk_idle_row() {
    awk -v label="$1" '
        { for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] } }
        END {
            if (v["idling"] == "") { printf "| %s | failed (see above) | | | | | | |\n", label; exit }
            printf "| %s | %d idling (set-up %s s) | - | - | - | %s KiB PSS per session (%.1f MiB in all, %d procs) | %d | - |\n",
                label, v["idling"], v["setup_s"], v["pss_per_session_kib"], v["pss_idle_kib"] / 1024, v["procs_idle"], v["errors"]
        }' "$2"
}

# awk_proto_row LABEL OUT UNIT: one table row from imap_load/submit_load + server_measure lines.
awk_proto_row() {
    awk -v label="$1" -v unit="$3" -v hz=1 '
        { for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] } }
        function f(x) { return x >= 100 ? sprintf("%.0f", x) : x >= 10 ? sprintf("%.1f", x) : sprintf("%.2f", x) }
        END {
            if (unit == "cmds") { n = v["commands"]; r = f(v["rate_cmds"]) " cmds/s (" f(v["rate_iterations"]) " sessions/s)"; p50 = v["lat_p50_ms"]; p99 = v["lat_p99_ms"]; bad = v["failed"] + v["conn_errors"]; u = "ms/cmd" }
            else if (unit == "fetch") { n = v["fetch_env_n"]; r = f(n / v["elapsed_s"]) " FETCH/s"; p50 = v["fetch_env_p50_ms"]; p99 = v["fetch_env_p99_ms"]; bad = v["failed"]; u = "ms/FETCH" }
            else { n = v["accepted"]; r = f(v["rate_accepted"]) " msgs/s"; p50 = v["lat_p50_ms"]; p99 = v["lat_p99_ms"]; bad = v["failed"] + v["unfinished"]; u = "ms/msg" }
            if (n == "") { printf "| %s | failed (see above) | | | | | | |\n", label; exit }
            cpu = (n > 0 && v["server_cpu_ms"] != "") ? f(v["server_cpu_ms"] / n) " " u : "n/a"
            m = v["pss_kib_max"] > 0 ? sprintf("%.1f MiB, %d procs", v["pss_kib_max"] / 1024, v["procs_max"]) : "n/a"
            printf "| %s | %s | %s | %s | %s | %s | %d | %s |\n", label, r, f(p50), f(p99), cpu, m, bad, v["other_cpu_pct"]
        }' "$2"
}
