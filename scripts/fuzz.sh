#!/bin/sh
# fuzz.sh BUILD [SECONDS] - run every libFuzzer target in BUILD/fuzz for a
# bounded time (default 60 s each), seeded from t/fuzz/corpus/NAME, with new
# inputs kept in t/fuzz/corpus-NAME (ignored by git).
set -eu
build=${1:-build-fuzz}
secs=${2:-60}
status=0
for f in "$build"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f" | sed 's/^fuzz_//')
    work=t/fuzz/corpus-$name
    mkdir -p "$work"
    echo "fuzz: $name for ${secs}s"
    "$f" -max_total_time="$secs" -max_len=65536 "$work" "t/fuzz/corpus/$name" || status=1
done
exit $status
