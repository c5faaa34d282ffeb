# proc_acct.sh - shared /proc accounting for the bench scripts (sourced).
#
# A server is a set of root PIDs (its masters) plus all their descendants,
# re-read from /proc at each sample.  CPU = utime+stime+cutime+cstime summed
# over the live tree: workers that exit are reaped by a parent in the tree,
# whose cutime/cstime then carry their time, so the sum stays cumulative.
# PSS from /proc/PID/smaps_rollup (needs root or the server's user).
# See bench/README.md, "Which processes are the server".

# "pid ppid cputicks" for every process.
proc_table() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{
        pid = $1; rest = $0
        sub(/^.*\) /, "", rest)
        split(rest, f, " ")
        print pid, f[2], f[12] + f[13] + f[14] + f[15]
    }'
}

# tree ROOTS...: "pid cputicks" for each live root and every descendant.
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

# sys_ticks: "busy total" ticks of the whole machine.
sys_ticks() {
    awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit }' /proc/stat
}

tree_ticks() { tree "$@" | awk '{ s += $2 } END { print s + 0 }'; }
tree_pids() { tree "$@" | awk '{ print $1 }' | sort -n | tr '\n' ' '; }

# tree_pss ROOTS...: "KiB processes" (KiB 0 when smaps_rollup is unreadable).
tree_pss() {
    local p
    for p in $(tree_pids "$@"); do
        cat "/proc/$p/smaps_rollup" 2>/dev/null || true
    done | awk '/\[rollup\]/ { n++ } /^Pss:/ { s += $2 } END { print s + 0, n + 0 }'
}
