"""mcfixture - a throw-away mailcore instance for integration tests.

An Instance has its own temp directory (config, data, queue, run, a daemon
directory, a self-signed certificate), free loopback ports, and runs the
real master from $MAILCORE_BIN (default: ../../build/bin).  Daemons that are
not built yet are stood in for by t/testd (see testd.c).

    with Instance(testd=("smtpd", "submitd", "imapd", "relayq")) as mc:
        mc.start()
        mc.mailctl("user", "add", "alice", "--password-stdin", input="pw\\n")

At stop, the master log is checked for sanitizer reports: any fails the test.
Every process started here is stopped by PID; nothing outlives the test.
"""
import json
import os
import pwd
import random
import signal
import socket
import subprocess
import tempfile
import time
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("MAILCORE_SRC", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("MAILCORE_BIN", os.path.join(SRC, "build", "bin"))
TESTD = os.path.abspath(os.path.join(BIN, "..", "t", "testd"))
IS_ROOT = os.geteuid() == 0
CREATOR = "mailcore" if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name
DAEMONS = ("smtpd", "submitd", "imapd", "relayq")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")


def free_port():
    return free_ports(1)[0]


# Listening ports for test instances come from below the kernel's ephemeral
# range (32768-60999 here), so that no client connection of a test running
# beside this one can take a port between its choice and a (re)start of
# master; and above the fixed ports of make run (12xxx), the bench (13xxx)
# and the peers (10xxx).
PORT_RANGE = (20000, 32000)


def free_ports(n):
    """n distinct free loopback ports (all held open while choosing).

    Each socket listens: Linux lets two SO_REUSEADDR sockets bind the same
    port as long as neither listens, which once gave smtpd_port and
    submission_ssl_port the same number."""
    socks = []
    chosen = set()
    rng = random.Random()
    try:
        while len(socks) < n:
            port = rng.randrange(*PORT_RANGE)
            if port in chosen:
                continue
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                s.listen(1)
            except OSError:
                s.close()
                continue
            socks.append(s)
            chosen.add(port)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_cert(directory):
    """A self-signed certificate for localhost: (cert, key)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def proc_status(pid):
    """/proc/PID/status as a dict, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None


def pid_alive(pid):
    st = proc_status(pid)
    return st is not None and not st.get("State", "").startswith("Z")


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class Instance:
    def __init__(self, testd=DAEMONS, **settings):
        self.dir = tempfile.mkdtemp(prefix="mailcore-it-")
        os.chmod(self.dir, 0o755)
        self.daemon_dir = os.path.join(self.dir, "libexec")
        os.mkdir(self.daemon_dir)
        for name in DAEMONS:
            real = os.path.join(BIN, name)
            if name in testd or not os.path.exists(real):
                os.symlink(TESTD, os.path.join(self.daemon_dir, name))
            else:
                os.symlink(real, os.path.join(self.daemon_dir, name))
        self.cert, self.key = make_cert(self.dir)
        keys = ("smtpd_port", "submission_port", "submission_ssl_port", "imap_port",
                "imaps_port")
        self.ports = dict(zip(keys, free_ports(len(keys))))
        self.settings = {
            "listen_address": "127.0.0.1",
            "tls_cert_file": self.cert,
            "tls_key_file": self.key,
            "data_directory": os.path.join(self.dir, "data"),
            "queue_directory": os.path.join(self.dir, "queue"),
            "run_directory": os.path.join(self.dir, "run"),
            "daemon_directory": self.daemon_dir,
            "mail_creator": CREATOR,
            "email_domain": "example.test",
            "worker_processes": "2",
            "shutdown_timeout": "5s",
        }
        self.settings.update(self.ports)
        self.settings.update(settings)
        self.conf = os.path.join(self.dir, "mailcore.conf")
        self.write_conf()
        self.log_path = os.path.join(self.dir, "master.log")
        self.master = None
        self.notify = None

    # --- configuration ---------------------------------------------------

    def write_conf(self, extra_text=""):
        with open(self.conf, "w") as f:
            f.write("# written by mcfixture\n")
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")
            f.write(extra_text)
        os.chmod(self.conf, 0o644)

    def set(self, **settings):
        self.settings.update({k: str(v) for k, v in settings.items()})
        self.write_conf()

    # --- processes --------------------------------------------------------

    def run_master(self, timeout=20):
        """Run master to completion (for start-up failures): CompletedProcess."""
        return subprocess.run([os.path.join(BIN, "master"), "-c", self.conf],
                              capture_output=True, text=True, timeout=timeout)

    def start(self, wait_daemons=True):
        try:
            return self._start(wait_daemons)
        except BaseException:
            # setUp may fail here, and then no tearDown runs: stop what
            # this instance started now, so nothing outlives the test.
            log = self.read_log()
            self.close()
            self.read_log = lambda: log
            raise

    def _start(self, wait_daemons):
        """Start master (again, after stop(): the log is appended to)."""
        path = os.path.join(self.dir, "notify.sock")
        if os.path.exists(path):
            os.unlink(path)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(path)
        self.notify.settimeout(60)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        self.log = open(self.log_path, "a")
        self.master = subprocess.Popen([os.path.join(BIN, "master"), "-c", self.conf],
                                       stdout=self.log, stderr=subprocess.STDOUT, env=env)
        try:
            msg = self.notify.recv(4096).decode()
        except socket.timeout:
            raise AssertionError("master sent no READY=1:\n" + self.read_log())
        assert "READY=1" in msg, msg
        if wait_daemons:
            want = self.expected_daemons()
            ok = wait_for(lambda: self.ready_daemons() >= want, 15)
            assert ok, f"expected {want} daemons, got {self.daemon_count()}\n{self.read_log()}"
        return self

    def ready_daemons(self):
        """Daemons past start-up: exec'd and privileges dropped (no_new_privs)."""
        n = 0
        for pid, name in self.children().items():
            st = proc_status(pid)
            if name in DAEMONS and st and st.get("NoNewPrivs") == "1":
                n += 1
        return n

    def expected_daemons(self):
        workers = int(self.settings.get("worker_processes", "2")) or os.cpu_count()
        ports = lambda *keys: any(int(self.settings[k]) for k in keys)
        n = 0
        n += workers if ports("smtpd_port") else 0
        n += workers if ports("submission_port", "submission_ssl_port") else 0
        n += workers if ports("imap_port", "imaps_port") else 0
        n += 1 if ports("submission_port", "submission_ssl_port") else 0
        return n

    def children(self):
        """{pid: name} of master's live children."""
        out = {}
        if self.master is None:
            return out
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            st = proc_status(int(entry))
            if st and st.get("PPid") == str(self.master.pid) and not st["State"].startswith("Z"):
                out[int(entry)] = st["Name"]
        return out

    def daemon_count(self):
        counts = {}
        for name in self.children().values():
            counts[name] = counts.get(name, 0) + 1
        return counts

    def pids_of(self, name):
        return sorted(pid for pid, n in self.children().items() if n == name)

    def stop(self, timeout=15):
        """SIGTERM master; returns its exit status."""
        if self.master is None:
            return None
        if self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
        try:
            status = self.master.wait(timeout)
        except subprocess.TimeoutExpired:
            self.master.kill()
            status = self.master.wait()
            raise AssertionError("master did not stop within %ss" % timeout)
        finally:
            self.log.close()
            if self.notify:
                self.notify.close()
        return status

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def sanitizer_reports(self):
        text = self.read_log()
        return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]

    def sanitizer_mark(self):
        """Where a test starts (its setUp), for check_sanitizer_since()."""
        return len(self.sanitizer_reports())

    def check_sanitizer_since(self, mark):
        """A test's tearDown: fail on any sanitizer report logged since mark."""
        reports = self.sanitizer_reports()[mark:]
        if reports:
            raise AssertionError("sanitizer reports:\n" + "\n".join(reports))

    def close(self):
        if self.notify:
            self.notify.close()
        if getattr(self, "log", None):
            self.log.close()
        master = self.master
        if master is not None and master.poll() is None:
            kids = list(self.children())
            master.kill()
            master.wait()
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if os.environ.get("MAILCORE_KEEP_TMP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        reports = self.sanitizer_reports() if self.master else []
        self.close()
        if reports and exc[0] is None:
            raise AssertionError("sanitizer reports:\n" + "\n".join(reports))

    # --- clients ------------------------------------------------------------

    def mailctl(self, *args, input=None, check=False):
        r = subprocess.run([os.path.join(BIN, "mailctl"), "-c", self.conf, *args],
                           input=input, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"mailctl {' '.join(args)} exit {r.returncode}: {r.stderr}")
        return r

    def add_user(self, name, password="secret-pw-1", *extra):
        return self.mailctl("user", "add", name, "--password-stdin", *extra,
                            input=password + "\n", check=True)

    def message_list(self, user, mailbox="INBOX"):
        """`mailctl message list USER MAILBOX --json`: a list of dicts (uid, size, ...)."""
        r = self.mailctl("message", "list", user, mailbox, "--json", check=True)
        return json.loads(r.stdout)

    def message_bytes(self, user, mailbox, uid):
        """`mailctl message cat`: one message exactly as stored, as bytes."""
        r = subprocess.run([os.path.join(BIN, "mailctl"), "-c", self.conf, "message", "cat",
                            user, mailbox, str(uid)], capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"mailctl message cat {user} {mailbox} {uid} exit "
                                 f"{r.returncode}: {r.stderr.decode(errors='replace')}")
        return r.stdout

    def messages(self, user, mailbox="INBOX"):
        """Every message of a mailbox as bytes, in UID order."""
        return [self.message_bytes(user, mailbox, m["uid"])
                for m in self.message_list(user, mailbox)]

    def testd_line(self, port_key="smtpd_port", send=None, timeout=5):
        """Connect to a testd listener; its greeting (and reply to send)."""
        with socket.create_connection(("127.0.0.1", int(self.settings[port_key])),
                                      timeout=timeout) as s:
            f = s.makefile("rb")
            greeting = f.readline().decode().strip()
            if send is None:
                return greeting
            s.sendall(send.encode() + b"\r\n")
            return greeting, f.readline().decode().strip()
