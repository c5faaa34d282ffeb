#!/usr/bin/env python3
"""idle_hold.py - hold N IMAP sessions in IDLE and measure the server's PSS.

    idle_hold.py --port PORT --sessions N --server-pids "PID ..." [--host 127.0.0.1]
                 [--tls] [--users 100] [--user-fmt user%d@example.test] [--pass-fmt pw-user%d]
                 [--hold 5] [--timeout 120] [--concurrency 50]

Opens N plain (--tls: implicit TLS, certificate not checked) connections to
HOST:PORT (loopback only), each: LOGIN
user(i mod U), SELECT INBOX, IDLE; waits for every "+" continuation, then
samples the server's process tree (the PIDs given and all descendants) from
/proc: sum of PSS (smaps_rollup) and the number of processes, before the
sessions were opened and while all N are idling.  Prints one line

  idle_hold sessions=N idling=M pss_before_kib= pss_idle_kib= procs_before= procs_idle=
            pss_per_session_kib=(idle-before)/M  pss_total_per_session_kib=idle/M ...

then DONE + LOGOUT on every session and closes them.  Bounded: --timeout for
the whole set-up; RLIMIT_NOFILE is raised to what N needs (hard limit
permitting).  Stops nothing but its own sockets.
"""
import argparse, asyncio, ipaddress, os, resource, socket, ssl, sys, time


def tree(roots):
    parent = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                s = f.read()
            parent[int(d)] = int(s[s.rindex(')') + 2:].split()[1])
        except (OSError, ValueError):
            pass
    keep = {r for r in roots if r in parent}
    grew = True
    while grew:
        grew = False
        for p, pp in parent.items():
            if p not in keep and pp in keep:
                keep.add(p)
                grew = True
    return keep


def pss(roots):
    total = n = 0
    for p in tree(roots):
        try:
            with open(f'/proc/{p}/smaps_rollup') as f:
                for line in f:
                    if line.startswith('Pss:'):
                        total += int(line.split()[1])
                        n += 1
                        break
        except OSError:
            pass
    return total, n


async def session(i, a, ready, stats):
    u = i % a.users
    r, w = await asyncio.open_connection(a.host, a.port, ssl=a.ssl_ctx)
    tag = 0

    async def cmd(text):
        nonlocal tag
        tag += 1
        t = f'a{tag}'
        w.write(f'{t} {text}\r\n'.encode())
        await w.drain()
        while True:
            line = await r.readline()
            if not line:
                raise ConnectionError('closed')
            if line.startswith(t.encode() + b' '):
                if not line[len(t) + 1:].startswith(b'OK'):
                    raise RuntimeError(line.decode(errors='replace').strip())
                return

    greet = await r.readline()
    if not greet.startswith(b'* OK'):
        raise RuntimeError(f'greeting {greet!r}')
    await cmd(f'LOGIN "{a.user_fmt % u}" "{a.pass_fmt % u}"')
    await cmd('SELECT INBOX')
    w.write(b'i IDLE\r\n')
    await w.drain()
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError('closed')
        if line.startswith(b'+'):
            break
    stats['idling'] += 1
    return r, w


async def main(a):
    roots = [int(x) for x in a.server_pids.split()]
    before, nb = pss(roots)
    sem = asyncio.Semaphore(a.concurrency)
    stats = {'idling': 0, 'errors': 0}
    conns = []
    errs = []

    async def one(i):
        async with sem:
            try:
                conns.append(await asyncio.wait_for(session(i, a, None, stats), a.timeout))
            except Exception as e:  # noqa: BLE001 - report, count, go on
                stats['errors'] += 1
                if len(errs) < 3:
                    errs.append(f'session {i}: {e!r}')

    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(a.sessions))), a.timeout + 30)
    setup_s = time.monotonic() - t0
    for e in errs:
        print('idle_hold:', e, file=sys.stderr)
    await asyncio.sleep(a.hold)
    idle, ni = pss(roots)
    m = max(stats['idling'], 1)
    print(f"idle_hold sessions={a.sessions} idling={stats['idling']} errors={stats['errors']} "
          f"setup_s={setup_s:.1f} pss_before_kib={before} pss_idle_kib={idle} procs_before={nb} "
          f"procs_idle={ni} pss_per_session_kib={(idle - before) / m:.1f} "
          f"pss_total_per_session_kib={idle / m:.1f}", flush=True)
    for r, w in conns:
        try:
            w.write(b'DONE\r\nz LOGOUT\r\n')
        except Exception:  # noqa: BLE001
            pass
    await asyncio.sleep(1)
    for r, w in conns:
        w.close()
    return 0 if stats['errors'] == 0 else 1


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--sessions', type=int, default=2000)
    p.add_argument('--server-pids', required=True)
    p.add_argument('--users', type=int, default=100)
    p.add_argument('--user-fmt', default='user%d@example.test')
    p.add_argument('--pass-fmt', default='pw-user%d')
    p.add_argument('--hold', type=float, default=5)
    p.add_argument('--timeout', type=float, default=120)
    p.add_argument('--concurrency', type=int, default=50)
    p.add_argument('--tls', action='store_true')
    a = p.parse_args()
    a.ssl_ctx = None
    if a.tls:
        a.ssl_ctx = ssl.create_default_context()
        a.ssl_ctx.check_hostname = False
        a.ssl_ctx.verify_mode = ssl.CERT_NONE
    if not ipaddress.ip_address(socket.gethostbyname(a.host)).is_loopback:
        sys.exit('idle_hold: loopback only')
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.sessions + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    sys.exit(asyncio.run(main(a)))
