#!/bin/sh
# install.sh BUILD PREFIX - install mailcore as a system service.
#
# Programs: PREFIX/sbin/mailcore-master, PREFIX/sbin/mailctl, the daemons in
# PREFIX/libexec/mailcore; /etc/mailcore/mailcore.conf (kept if present);
# the systemd unit; the mailcore account.  DESTDIR is honoured for packaging.
set -eu
build=${1:-build}
prefix=${2:-/usr}
dest=${DESTDIR:-}

DESTDIR="$dest" cmake --install "$build" --prefix "$prefix"
install -d -m 0755 "$dest/etc/mailcore"
if [ ! -e "$dest/etc/mailcore/mailcore.conf" ]; then
    install -m 0644 etc/mailcore.conf "$dest/etc/mailcore/mailcore.conf"
fi
install -d -m 0755 "$dest/lib/systemd/system"
install -m 0644 etc/mailcore.service "$dest/lib/systemd/system/mailcore.service"
if [ -z "$dest" ] && [ "$(id -u)" = 0 ] && ! getent passwd mailcore >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mailcore
fi
cat <<MSG
installed.  Next:
  1. put a certificate and key at /etc/mailcore/tls/ (or edit tls_cert_file/tls_key_file)
  2. edit /etc/mailcore/mailcore.conf (email_domain, mailserver_host, ...)
  3. mailctl check && systemctl daemon-reload && systemctl enable --now mailcore
  4. mailctl user add alice
MSG
