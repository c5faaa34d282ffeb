#!/bin/sh
# deps.sh - make sure the build and test dependencies are installed.
#
# As root on Debian: installs what is missing with apt-get and creates the
# mailcore system account.  As another user: names what is missing and how
# to install it, and fails.  Quiet when everything is there.
set -eu

PACKAGES="cmake make gcc pkg-config libssl-dev liblmdb-dev libcap-dev libcrypt-dev
zlib1g-dev python3 curl swaks openssl clang libclang-rt-14-dev lmdb-utils procps isync"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "deps.sh: installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || true
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "deps.sh: missing packages:$missing" >&2
        echo "deps.sh: install them as root: apt-get install$missing" >&2
        exit 1
    fi
fi

if ! getent passwd mailcore >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin mailcore
        echo "deps.sh: created the system account mailcore"
    else
        echo "deps.sh: note: no 'mailcore' account; as root: useradd --system mailcore" >&2
    fi
fi
