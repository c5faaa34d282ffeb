#!/bin/sh
# devinstance.sh BUILD - a development instance under BUILD/dev, started in
# the foreground: high loopback ports, a self-signed certificate, users
# alice and bob with fresh passwords (printed).  Ctrl-C stops it.
#
# Only the daemons that are built are enabled; the others' ports are set to
# 0 so master starts cleanly while mailcore grows.
set -eu
build=$(cd "${1:-build}" && pwd)
bin=$build/bin
dev=$build/dev
conf=$dev/mailcore.conf

smtp=12525 sub=12587 subs=12465 imap=12143 imaps=12993
port_if() { [ -x "$bin/$1" ] && echo "$2" || echo 0; }

if [ "$(id -u)" = 0 ]; then creator=mailcore; else creator=$(id -un); fi
mkdir -p "$dev/tls"
if [ ! -f "$dev/tls/key.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dev/tls/key.pem" -out "$dev/tls/cert.pem" 2>/dev/null
    chmod 600 "$dev/tls/key.pem"
fi
cat > "$conf" <<CONF
# Development instance made by scripts/devinstance.sh; rewritten on every 'make run'.
listen_address = 127.0.0.1
smtpd_port = $(port_if smtpd $smtp)
submission_port = $(port_if submitd $sub)
submission_ssl_port = $(port_if submitd $subs)
imap_port = $(port_if imapd $imap)
imaps_port = $(port_if imapd $imaps)
tls_cert_file = $dev/tls/cert.pem
tls_key_file = $dev/tls/key.pem
data_directory = $dev/data
queue_directory = $dev/queue
run_directory = $dev/run
daemon_directory = $bin
mail_creator = $creator
email_domain = example.test
worker_processes = 1
CONF
# The daemons (as $creator) must reach the binaries and the config.
chmod 755 "$dev"
chmod 644 "$conf"

mailctl="$bin/mailctl -c $conf"
mkdir -p "$dev/data"
[ "$(id -u)" = 0 ] && chown "$creator:" "$dev/data"
if ! err=$($mailctl user list 2>&1 >/dev/null); then
    echo "devinstance.sh: $err" >&2
    echo "devinstance.sh: the instance in $dev is from an older mailcore: rm -rf $dev to start afresh" >&2
    exit 1
fi
for u in alice bob; do
    if ! $mailctl user list | grep -q "^$u "; then
        pw=$(openssl rand -base64 12)
        printf '%s\n' "$pw" | $mailctl user add "$u" --password-stdin >/dev/null
        printf '%s\n' "$pw" > "$dev/$u.password"
        chmod 600 "$dev/$u.password"
    fi
done
$mailctl alias add postmaster@example.test alice >/dev/null 2>&1 || true

echo
echo "mailcore development instance in $dev"
echo "  users:    alice@example.test  password $(cat "$dev/alice.password")"
echo "            bob@example.test    password $(cat "$dev/bob.password")"
if [ -x "$bin/smtpd" ]; then
    echo "  SMTP:     127.0.0.1:$smtp"
    echo "            swaks --server 127.0.0.1:$smtp --from you@example.org --to alice@example.test"
fi
if [ -x "$bin/submitd" ]; then
    echo "  submit:   127.0.0.1:$sub (STARTTLS), 127.0.0.1:$subs (TLS)"
    echo "            swaks --server 127.0.0.1:$sub -tls --auth PLAIN --au alice@example.test --ap PASSWORD --to bob@example.test"
fi
if [ -x "$bin/imapd" ]; then
    echo "  IMAP:     127.0.0.1:$imap (STARTTLS), 127.0.0.1:$imaps (TLS); user alice@example.test,"
    echo "            certificate $dev/tls/cert.pem (self-signed)"
    echo "            curl -k --user alice@example.test:PASSWORD imaps://127.0.0.1:$imaps/INBOX"
fi
for d in smtpd submitd imapd; do
    [ -x "$bin/$d" ] || echo "  ($d is not built yet: its ports are 0)"
done
echo "  admin:    $mailctl status     $mailctl message list alice"
echo "Starting master in the foreground; Ctrl-C stops it."
echo
exec "$bin/master" -c "$conf"
