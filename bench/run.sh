#!/bin/bash
# run.sh BUILD_DIR - the `make bench` driver.
#
# Builds smtp_load into BUILD_DIR/bench/, then runs the SMTP intake workloads
# (smtp_bench.sh) against every target that is available, and prints one
# table per target:
#
#   mailcore  when BUILD_DIR/bin/smtpd and master exist: a bench instance
#             under BUILD_DIR/bench/instance (loopback, SMTP on port
#             $BENCH_MAILCORE_PORT, default 13525; users user0..user99),
#             started here and stopped here by its PID;
#   peers     Postfix -> Dovecot from ../shared/peers/peers.sh, when they are
#             running (peers.sh start).  With BENCH_START_PEERS=1 this script
#             starts them itself if they are set up, and stops them after.
#
# Environment:
#   BENCH_MESSAGES=N      messages per workload (default 2000)
#   BENCH_WORKLOADS=...   subset of: intake-1 intake-10 intake-64k imap-mix
#                         imap-envelope-10k imap-idle imap-idle-tls submit-remote
#                         submit-local relay-1000 (default all; imap-* and submit-*
#                         are in proto_bench.sh, relay-1000 in relay_bench.sh,
#                         which list their own knobs; BENCH_PEERS_LOGIN_PERF=1
#                         adds imap-mix with Dovecot's login-perf tuning when
#                         this script starts the peers)
#   BENCH_FSYNC=METHOD    auto|perf|strace|none (default auto)
#   BENCH_MAILCORE_DELIVERED_CMD  how to count mailcore's delivered messages
#                         (default: files in the instance's data/msg store)
#   BENCH_TARGETS=...    mailcore and/or peers (default both)
#   BENCH_KV=FILE         also append every machine-readable result line here
#
# Every workload is bounded: smtp_load stops after 45 s whatever is left,
# delivery is awaited at most 30 s after that, and the fsync run is short.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
peers=$(cd "$src/.." && pwd)/shared/peers/peers.sh
PEERS_DIR=${PEERS_DIR:-/var/tmp/mailcore-peers}
messages=${BENCH_MESSAGES:-2000}
workloads=${BENCH_WORKLOADS:-intake-1 intake-10 intake-64k imap-mix imap-envelope-10k imap-idle imap-idle-tls submit-remote submit-local relay-1000}
smtp_workloads="" proto_workloads="" relay_workload=""
for w in $workloads; do
    case "$w" in
    intake-*) smtp_workloads+=" $w" ;;
    imap-mix | imap-envelope-10k | imap-idle | imap-idle-tls | submit-remote | submit-local) proto_workloads+=" $w" ;;
    relay-1000) relay_workload=$w ;;
    *) echo "run.sh: unknown workload $w" >&2; exit 2 ;;
    esac
done
fsync=${BENCH_FSYNC:-auto}
mc_port=${BENCH_MAILCORE_PORT:-13525}
mc_imap=${BENCH_MAILCORE_IMAP_PORT:-13543}
mc_imaps=${BENCH_MAILCORE_IMAPS_PORT:-13993}
mc_sub=${BENCH_MAILCORE_SUBMISSION_PORT:-13587}
mc_sink=${BENCH_MAILCORE_SINK_PORT:-13526}

mkdir -p "$build/bench"
load=$build/bench/smtp_load
cc -std=c11 -O2 -Wall -Wextra -Werror -o "$load" "$here/smtp_load.c"
if [ -n "$proto_workloads$relay_workload" ]; then
    cc -std=c11 -O2 -Wall -Wextra -Werror -pthread -o "$build/bench/imap_load" "$here/imap_load.c"
    cc -std=c11 -O2 -Wall -Wextra -Werror -pthread -o "$build/bench/submit_load" "$here/submit_load.c" -lssl -lcrypto
fi
# shellcheck source=proto_bench.sh
. "$here/proto_bench.sh"
# shellcheck source=proc_acct.sh
. "$here/proc_acct.sh"
# shellcheck source=relay_bench.sh
. "$here/relay_bench.sh"
kv=${BENCH_KV:-$build/bench/results.kv}

mc_pid="" started_peers=0 sink_pid=""
cleanup() {
    if [ -n "$sink_pid" ] && kill -0 "$sink_pid" 2>/dev/null; then kill -TERM "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; fi
    # Stop only what this script started.
    if [ -n "$mc_pid" ] && kill -0 "$mc_pid" 2>/dev/null; then
        kill -TERM "$mc_pid"
        wait "$mc_pid" 2>/dev/null || true
    fi
    if [ "$started_peers" = 1 ]; then "$peers" stop >/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# workload_args NAME: smtp_bench options for one workload.
workload_args() {
    case "$1" in
    intake-1) echo "--size 4096 --sessions 20 --per-conn 1 --messages $messages" ;;
    intake-10) echo "--size 4096 --sessions 20 --per-conn 10 --messages $messages" ;;
    intake-64k) echo "--size 65536 --sessions 20 --per-conn 1 --messages $((messages / 2))" ;;
    *) echo "run.sh: unknown workload $1" >&2; return 1 ;;
    esac
}

workload_label() {
    case "$1" in
    intake-1) echo "SMTP intake, 4 KiB, 20 sessions, 1 msg/conn" ;;
    intake-10) echo "SMTP intake, 4 KiB, 20 sessions, 10 msgs/conn" ;;
    intake-64k) echo "SMTP intake, 64 KiB, 20 sessions, 1 msg/conn" ;;
    esac
}

# table TITLE PORT SERVER_PIDS DELIVERED_CMD
table() {
    local title=$1 port=$2 pids=$3 dcmd=$4 w
    echo
    echo "### $title"
    echo
    echo "| workload | msgs/s accepted | msgs/s delivered | p50 ms | p99 ms | server CPU ms/msg | fsyncs/msg | server memory |"
    echo "|---|---|---|---|---|---|---|---|"
    for w in $workloads; do
        # shellcheck disable=SC2046 # word splitting of the option list is intended
        "$here/smtp_bench.sh" 127.0.0.1 "$port" --load "$load" --row-only \
            $(workload_args "$w") --label "$(workload_label "$w")" \
            --max-time 45 --timeout 30 --delivery-wait 30 \
            --server-pids "$pids" --delivered-cmd "$dcmd" \
            --fsync-method "$fsync" --fsync-messages 300 --kv "$kv" ||
            echo "| $(workload_label "$w") | failed (see above) | | | | | | |"
    done
    echo
    echo "p50/p99: from the final \".\" to the 250 reply, accepted messages.  Server CPU and"
    echo "memory: the server's whole process tree (see bench/README.md).  fsyncs/msg: counted"
    echo "with perf or strace in a separate run of 300 messages, not during the timed run."
}

wait_port() { # wait_port PORT PID: until PORT listens (10 s), while PID lives
    local i
    for ((i = 0; i < 100; i++)); do
        ss -ltnH "sport = :$1" | grep -q . && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---- mailcore ----

# reset_mix_users MAILCTL: imap-mix's APPENDs grow the users' INBOXes from
# run to run; like the peers (emptied after each run), every imap-mix user
# starts with the 200 messages populate() gives: a user with more is made
# again, empty.
reset_mix_users() {
    local mailctl=$1 u n json
    json=$($mailctl user list --json)
    for ((u = 0; u < imap_users; u++)); do
        n=$(python3 -c 'import json,sys; u=sys.argv[1]; print(sum(m["messages"] for x in json.load(sys.stdin) if x["name"] == u for m in x["mailboxes"] if m["name"] == "INBOX"))' "user$u" <<< "$json")
        if [ "${n:-0}" -gt 200 ]; then
            $mailctl user del "user$u" > /dev/null
            printf 'pw-user%d\n' "$u" | $mailctl user add "user$u" --password-stdin > /dev/null
        fi
    done
}

run_mailcore() {
    local dir=$build/bench/instance conf creator u
    dir=$build/bench/instance conf=$dir/mailcore.conf
    if [ "$(id -u)" = 0 ]; then creator=mailcore; else creator=$(id -un); fi
    mkdir -p "$dir/tls" "$dir/data"
    chmod 755 "$dir"
    if [ ! -f "$dir/tls/key.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
            -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" 2>/dev/null
        chmod 600 "$dir/tls/key.pem"
    fi
    cat > "$conf" <<CONF
# Benchmark instance made by bench/run.sh; rewritten on every run.
listen_address = 127.0.0.1
smtpd_port = $mc_port
submission_port = $( [ -n "$proto_workloads$relay_workload" ] && echo "$mc_sub" || echo 0)
submission_ssl_port = 0
imap_port = $( [ -n "$proto_workloads" ] && echo "$mc_imap" || echo 0)
# Remote submission: relayq (when built) relays to an smtp-sink that
# proto_bench.sh starts during submit-remote, relay_bench.sh during relay-1000.
mailserver_host = 127.0.0.1
mailserver_port = $mc_sink
disable_starttls = yes
# The IDLE test (bench/idle_hold.py) holds thousands of sessions from 127.0.0.1.
imap_client_connection_limit = 25000
imap_user_connection_limit = 1000
imaps_port = $( [ -n "$proto_workloads" ] && echo "$mc_imaps" || echo 0)
tls_cert_file = $dir/tls/cert.pem
tls_key_file = $dir/tls/key.pem
data_directory = $dir/data
queue_directory = $dir/queue
run_directory = $dir/run
daemon_directory = $build/bin
mail_creator = $creator
email_domain = example.test
CONF
    chmod 644 "$conf"
    [ "$(id -u)" = 0 ] && chown "$creator:" "$dir/data"
    local mailctl="$build/bin/mailctl -c $conf"
    # The bench instance is disposable: one made by an older schema is remade.
    if $mailctl user list 2>&1 >/dev/null | grep -q 'schema version'; then
        echo "run.sh: $dir/data has an older schema: made again" >&2
        rm -rf "$dir/data" "$dir/queue" && mkdir -p "$dir/data"
        [ "$(id -u)" = 0 ] && chown "$creator:" "$dir/data"
    fi
    if ! $mailctl user list | grep -q '^user99 '; then
        echo "run.sh: creating user0..user99@example.test in $dir" >&2
        for ((u = 0; u < 100; u++)); do
            $mailctl user list | grep -q "^user$u " ||
                printf 'pw-user%d\n' "$u" | $mailctl user add "user$u" --password-stdin >/dev/null
        done
    fi
    [[ " $proto_workloads " != *" imap-mix "* ]] || reset_mix_users "$mailctl"
    if ss -ltnH "sport = :$mc_port" | grep -q .; then
        echo "run.sh: port $mc_port is already in use; set BENCH_MAILCORE_PORT" >&2
        return 1
    fi
    "$build/bin/master" -c "$conf" > "$dir/master.log" 2>&1 &
    mc_pid=$!
    if ! wait_port "$mc_port" "$mc_pid"; then
        echo "run.sh: mailcore did not start listening on $mc_port; $dir/master.log:" >&2
        tail -20 "$dir/master.log" >&2
        return 1
    fi
    # Delivered = index entries in the INBOXes (what IMAP shows), from one
    # read transaction: mailctl user list --json carries the counts.
    local count='import json,sys; print(sum(m["messages"] for u in json.load(sys.stdin) for m in u["mailboxes"] if m["name"] == "INBOX"))'
    local dcmd=${BENCH_MAILCORE_DELIVERED_CMD:-"$mailctl user list --json | python3 -c '$count'"}
    [ -z "$smtp_workloads" ] || table "mailcore (127.0.0.1:$mc_port, $build/bin)" "$mc_port" "$mc_pid" "$dcmd"
    if [ -n "$proto_workloads" ]; then
        wait_port "$mc_imap" "$mc_pid" && wait_port "$mc_sub" "$mc_pid" ||
            echo "run.sh: mailcore's imapd/submitd are not listening ($dir/master.log)" >&2
        local ucount='import json,sys; u=sys.argv[1]; print(sum(m["messages"] for x in json.load(sys.stdin) if x["name"] == u for m in x["mailboxes"] if m["name"] == "INBOX"))'
        proto_tables "mailcore" "$mc_port" "$mc_imap" "$mc_sub" "$mc_pid" \
            "$mailctl user list --json | python3 -c '$ucount' \$1" "$mc_sink" "$mc_imaps"
    fi
    [ -z "$relay_workload" ] || relay_mailcore "$dir" "$mailctl"
    kill -TERM "$mc_pid"
    wait "$mc_pid" 2>/dev/null || true
    mc_pid=""
}

# ---- peers ----

peers_pids() {
    local pf dc
    pf=$(head -1 "$PEERS_DIR/postfix/spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
    dc=$(cat "$PEERS_DIR/dovecot/run/master.pid" 2>/dev/null || true)
    if [ -n "$pf" ] && [ -n "$dc" ] && kill -0 "$pf" 2>/dev/null && kill -0 "$dc" 2>/dev/null; then
        echo "$pf $dc"
    fi
}

run_peers() {
    local pids
    pids=$(peers_pids)
    if [ -z "$pids" ] && [ "${BENCH_START_PEERS:-0}" = 1 ] && [ -f "$PEERS_DIR/dovecot/dovecot.conf" ]; then
        "$peers" start >&2
        started_peers=1
        pids=$(peers_pids)
    fi
    if [ -z "$pids" ]; then
        cat <<MSG

Peers (Postfix -> Dovecot) are not running: skipped.  As root:
    $peers install && $peers setup && $peers start
then run 'make bench' again ($peers stop afterwards), or let this script
start and stop them: BENCH_START_PEERS=1 make bench
MSG
        return 0
    fi
    # Delivered = messages in the INBOX Maildirs (new/ + cur/): what IMAP shows.
    local dcmd="find '$PEERS_DIR/mail' -type f \\( -path '*/Maildir/new/*' -o -path '*/Maildir/cur/*' \\) | wc -l"
    [ -z "$smtp_workloads" ] || table "peers: Postfix -> LMTP -> Dovecot (127.0.0.1:${PEERS_SMTP_PORT:-10025})" \
        "${PEERS_SMTP_PORT:-10025}" "$pids" "$dcmd"
    if [ -n "$proto_workloads" ]; then
        local ucount="d='$PEERS_DIR/mail/example.test'/\${1%%@*}/Maildir; find \"\$d/new\" \"\$d/cur\" -type f 2>/dev/null | wc -l"
        proto_tables "peers (Dovecot $(dovecot --version 2>/dev/null | cut -d' ' -f1) stock, Postfix $(postconf -d -h mail_version 2>/dev/null))" \
            "${PEERS_SMTP_PORT:-10025}" 10143 10587 "$pids" "$ucount" 10026 10993
        if [ "${BENCH_PEERS_LOGIN_PERF:-0}" = 1 ] && [[ " $proto_workloads " == *" imap-mix "* ]]; then
            if [ "$started_peers" = 1 ]; then
                "$peers" tuning login-perf >&2 && "$peers" restart >&2
                pids=$(peers_pids)
                proto_workloads=imap-mix proto_tables "peers (Dovecot login-perf tuning)" \
                    "${PEERS_SMTP_PORT:-10025}" 10143 10587 "$pids" "$ucount" 10026 10993
                "$peers" tuning stock >&2
                "$peers" restart >&2
                pids=$(peers_pids)      # the relay workload measures these
            else
                echo "run.sh: BENCH_PEERS_LOGIN_PERF=1 needs BENCH_START_PEERS=1 (peers not started here): skipped" >&2
            fi
        fi
    fi
    [ -z "$relay_workload" ] || relay_peers "${pids%% *}"
    if [ "$started_peers" = 1 ]; then
        "$peers" stop >&2
        started_peers=0
        # This script filled the peers' mailboxes (populate): empty them again.
        if [ "${proto_populated:-0}" = 1 ] && [ "${BENCH_KEEP_PEERS_MAIL:-0}" != 1 ]; then
            "$peers" reset-mail >&2
        fi
    fi
}

echo "SMTP benchmarks: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "results also appended to $kv"
targets=${BENCH_TARGETS:-mailcore peers}
if [[ " $targets " != *" mailcore "* ]]; then
    echo "mailcore: skipped (BENCH_TARGETS)"
elif [ -x "$build/bin/smtpd" ] && [ -x "$build/bin/master" ]; then
    run_mailcore || echo "run.sh: the mailcore run failed" >&2
else
    echo
    echo "mailcore: $build/bin/smtpd is not built yet, so there is nothing of mailcore's to"
    echo "measure; only the peers run.  (Once it exists, this script starts a bench instance.)"
fi
if [[ " $targets " == *" peers "* ]]; then run_peers; else echo "peers: skipped (BENCH_TARGETS)"; fi
