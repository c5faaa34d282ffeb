#!/bin/bash
# clang_check.sh SRC - every C file of the product and its tests through
# clang -fsyntax-only with the project's warnings as errors.  The fuzz build
# (make fuzz) uses clang, whose warnings differ from gcc's: this keeps it
# building.  Exit 77 (skipped) without clang.
set -eu
src=$1
command -v clang >/dev/null || { echo "clang missing: skipped"; exit 77; }
flags=(-std=c11 -fsyntax-only -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
       -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -D_GNU_SOURCE
       '-DMAILCORE_VERSION="0.1.0"' -I"$src/libmailcore/include" -I"$src/libmailcore/src"
       -I"$src/t/unit")
failed=0
for f in "$src"/libmailcore/src/*.c "$src"/{master,mailctl,smtpd,submitd,imapd,relayq}/*.c \
         "$src"/t/unit/*.c "$src"/t/testd/*.c; do
    dir=$(dirname "$f")
    case "$f" in
    */t/unit/*) extra=(-I"$src/imapd" -I"$src/relayq" -I"$src/master" -I"$src/mailctl") ;;
    *) extra=(-I"$dir") ;;
    esac
    clang "${flags[@]}" "${extra[@]}" "$f" || failed=1
done
exit $failed
