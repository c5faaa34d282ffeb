#!/bin/sh
# run_nonroot.sh - run the integration suite as an unprivileged user
# (nobody), so that CI, which runs as root, also proves that mailcore works
# and warns when it cannot drop privileges.  Exit 77 (skipped) when not root
# or when nobody cannot reach the build tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "not root: nothing to switch from"; exit 77; }
command -v setpriv >/dev/null || { echo "setpriv missing"; exit 77; }
py=/usr/bin/python3
run="setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp"
if ! $run test -x "$MAILCORE_BIN/master" || ! $run test -r "$here/mcfixture.py"; then
    echo "nobody cannot reach $MAILCORE_BIN or $here: skipped"
    exit 77
fi
cd "$here"
exec $run MAILCORE_BIN="$MAILCORE_BIN" MAILCORE_SRC="${MAILCORE_SRC:-}" \
    ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" \
    $py -W ignore::ResourceWarning -m unittest -v test_master test_mailctl
