"""imapd: IMAP4rev1/rev2 as mail clients (and an attacker) see it.

Runs the real smtpd and imapd (submitd and relayq are testd stand-ins).
Mail arrives the way it does in production: smtplib hands it to smtpd, which
files it into the INBOX, and a different process (imapd) serves it.  Most
tests talk IMAP on a raw socket (class Imap below) so that the exact
responses can be checked -- tagged status and response code, the untagged
responses and their order, the bytes of every literal; a few use imaplib,
curl and mbsync (isync), real clients, where "does a real client work" is
the question.  What is checked is what a client sees: the protocol, and the
message bytes it gets back compared with what was delivered (the stored
copy, `mailctl message cat`, is Return-Path: and Received: followed by
exactly the delivered content).

Most tests share one instance and use fresh users of their own; after each,
no imapd or smtpd may have died (a crash is restarted by master: the PIDs
change) and no sanitizer report may have appeared in the master log.
Connection limits get an instance of their own.
"""
import concurrent.futures
import datetime
import email.policy
import imaplib
import itertools
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from email.message import EmailMessage

from mcfixture import Instance, wait_for

TESTD = ("submitd", "relayq")       # smtpd and imapd are real
TIMEOUT = 20                        # seconds, for any one network operation
PASSWORD = "secret-pw-1"
BULK = 1000                         # messages of the bulk mailboxes


# --- an IMAP client on a raw socket ------------------------------------------

LITERAL_RE = re.compile(rb"\{(\d+)\+?\}$")


class Result:
    """A completed command: its tagged reply and the untagged responses
    (raw bytes after "* ", literals inline as {n}CRLF + bytes)."""

    def __init__(self, tag, status, text, untagged):
        self.tag = tag
        self.status = status            # "OK", "NO", "BAD"
        self.text = text                # after the status, e.g. "[READ-WRITE] Select completed"
        self.untagged = untagged        # list of bytes

    @property
    def code(self):
        """The response code of the tagged reply without brackets, or ""."""
        m = re.match(r"\[([^\]]*)\]", self.text)
        return m.group(1) if m else ""

    def lines(self):
        return [u.decode("utf-8", "replace") for u in self.untagged]

    def matching(self, pattern):
        return [l for l in self.lines() if re.search(pattern, l)]

    def fetches(self):
        """[(seq, {ITEM: value})] of the untagged FETCH responses."""
        out = []
        for u in self.untagged:
            m = re.match(rb"(\d+) FETCH ", u)
            if m:
                out.append((int(m.group(1)), fetch_items(u[m.end():])))
        return out

    def __repr__(self):
        shown = [l if len(l) < 300 else l[:300] + "..." for l in self.lines()[:40]]
        return f"<{self.tag} {self.status} {self.text} | untagged: {shown}>"


class Imap:
    """Exact bytes out; responses (with their literals) read in order."""

    _tags = itertools.count(1)

    def __init__(self, port, tls_context=None, timeout=TIMEOUT, greet=True,
                 source="127.0.0.1"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        self.greeting = self.response() if greet else None

    # input
    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection; unread: %r" % self.buf[:500])
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > 10 << 20:
                raise AssertionError("response line longer than 10 MB")
            self._fill()

    def _bytes(self, n):
        parts, have = [], 0
        while have < n:
            if not self.buf:
                self._fill()
            take = self.buf[:n - have]
            self.buf = self.buf[len(take):]
            parts.append(take)
            have += len(take)
        return b"".join(parts)

    def response(self):
        """One whole response line, its literals inline; without the final CRLF."""
        out = []
        while True:
            line = self._line()
            out.append(line)
            m = LITERAL_RE.search(line)
            if not m:
                return b"".join(out)
            out.append(b"\r\n" + self._bytes(int(m.group(1))))

    # output
    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def tag(self):
        return f"t{next(self._tags)}"

    def read_until_tagged(self, tag):
        untagged = []
        while True:
            r = self.response()
            if r.startswith(b"* "):
                untagged.append(r[2:])
            elif r.startswith(tag.encode() + b" "):
                rest = r[len(tag) + 1:].decode("utf-8", "replace")
                status, _, text = rest.partition(" ")
                return Result(tag, status, text, untagged)
            elif r.startswith(b"+"):
                raise AssertionError(f"unexpected continuation request {r!r} for {tag}")
            else:
                raise AssertionError(f"unexpected response {r[:300]!r} while waiting for {tag}")

    def cmd(self, text, tag=None):
        tag = tag or self.tag()
        self.send((tag + " " + text if isinstance(text, str) else tag.encode() + b" " + text)
                  + ("\r\n" if isinstance(text, str) else b"\r\n"))
        return self.read_until_tagged(tag)

    def ok(self, text):
        r = self.cmd(text)
        if r.status != "OK":
            raise AssertionError(f"{text[:200]!r}: {r}")
        return r

    def login(self, user, password=PASSWORD):
        return self.ok(f"LOGIN {quote(user)} {quote(password)}")

    def select(self, mailbox="INBOX"):
        return self.ok(f"SELECT {quote(mailbox)}")

    def starttls(self, context):
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def cmd_within(self, text, seconds, tag=None):
        """cmd(), but None when no tagged answer comes within seconds."""
        self.sock.settimeout(seconds)
        try:
            return self.cmd(text, tag)
        except (socket.timeout, TimeoutError):
            return None
        finally:
            self.sock.settimeout(TIMEOUT)

    def closed_by_server(self, timeout=5):
        """True when the server closes the connection within timeout
        (what arrives until then is kept in self.buf)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        except ssl.SSLError:
            return True
        finally:
            try:
                self.sock.settimeout(TIMEOUT)
            except OSError:
                pass

    def pending(self, wait=0.3):
        """Whatever the server sent within wait seconds, without blocking longer."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (socket.timeout, ssl.SSLWantReadError):
            pass
        finally:
            self.sock.settimeout(TIMEOUT)
        data, self.buf = self.buf, b""
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- parsing IMAP data (lists, strings, literals) -----------------------------

class Atom(str):
    pass


def parse_data(data, i=0, depth=0):
    """Parse IMAP data items starting at data[i] up to a ')' or the end:
    (items, next index).  Atoms are Atom (str), quoted strings str, literals
    bytes, NIL None, lists lists.  An atom containing '[' runs to its ']'."""
    items = []
    n = len(data)
    while i < n:
        c = data[i:i + 1]
        if c == b" ":
            i += 1
        elif c == b"(":
            sub, i = parse_data(data, i + 1, depth + 1)
            items.append(sub)
        elif c == b")":
            if depth == 0:
                raise ValueError(f"unbalanced ')' at {i}: {data[:200]!r}")
            return items, i + 1
        elif c == b'"':
            j, out = i + 1, bytearray()
            while data[j:j + 1] != b'"':
                if j >= n:
                    raise ValueError(f"unterminated quoted string: {data[i:i + 100]!r}")
                if data[j:j + 1] == b"\\":
                    j += 1
                out += data[j:j + 1]
                j += 1
            items.append(out.decode("utf-8", "replace"))
            i = j + 1
        elif c == b"{" or (c == b"~" and data[i + 1:i + 2] == b"{"):
            m = re.compile(rb"~?\{(\d+)\+?\}\r\n").match(data, i)
            if not m:
                raise ValueError(f"bad literal at {i}: {data[i:i + 40]!r}")
            size = int(m.group(1))
            items.append(bytes(data[m.end():m.end() + size]))
            i = m.end() + size
        else:
            j = i
            while j < n and data[j:j + 1] not in (b" ", b"(", b")"):
                if data[j:j + 1] == b"[":
                    k = data.find(b"]", j)
                    j = k if k >= 0 else n
                j += 1
            word = data[i:j].decode("utf-8", "replace")
            items.append(None if word.upper() == "NIL" else Atom(word))
            i = j
    if depth:
        raise ValueError(f"unbalanced '(': {data[:200]!r}")
    return items, i


def fetch_items(data):
    """The parenthesised list of a FETCH response into {NAME: value}."""
    items, _ = parse_data(data)
    if len(items) != 1 or not isinstance(items[0], list) or len(items[0]) % 2:
        raise AssertionError(f"malformed FETCH data: {data[:300]!r}")
    lst = items[0]
    return {str(lst[k]).upper(): lst[k + 1] for k in range(0, len(lst), 2)}


def lower_strings(x):
    if isinstance(x, list):
        return [lower_strings(e) for e in x]
    if isinstance(x, str) and not isinstance(x, Atom):
        return x.lower()
    return x


def strs(x):
    """Literals (bytes) as str, recursively: a string may come quoted or as
    a literal, at the server's choice."""
    if isinstance(x, list):
        return [strs(e) for e in x]
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return x


def flag_set(value):
    return {str(f) for f in value}


def apply_expunges(uids, result):
    """The uids left after the untagged EXPUNGEs of result, in order."""
    uids = list(uids)
    for line in result.matching(r"^\d+ EXPUNGE$"):
        del uids[int(line.split()[0]) - 1]
    return uids


def imap_time(date_time):
    """An IMAP date-time ("14-Feb-2024 09:30:00 +0200") as a POSIX time."""
    return datetime.datetime.strptime(date_time.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()


def seqset_numbers(s):
    out = []
    for part in s.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


# --- messages and delivery -----------------------------------------------------

def message(subject, body=b"Hello.\r\n", sender="sender@remote.example",
            to="someone@example.test", extra=""):
    """A small RFC 5322 message with CRLF line ends, as bytes."""
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n{extra}"
            f"Message-ID: <{subject.replace(' ', '.')}@remote.example>\r\n\r\n").encode() + body


def split_trace(raw):
    """A stored message: (trace headers, the delivered content), as bytes.
    The trace is Return-Path: and one Received: header (folded)."""
    if not raw.startswith(b"Return-Path: "):
        raise AssertionError(f"no Return-Path: first: {raw[:200]!r}")
    end = raw.index(b"\r\n") + 2
    if not raw.startswith(b"Received: ", end):
        raise AssertionError(f"no Received: after Return-Path: {raw[:400]!r}")
    end = raw.index(b"\r\n", end) + 2
    while raw[end:end + 1] in (b" ", b"\t"):
        end = raw.index(b"\r\n", end) + 2
    return raw[:end], raw[end:]


class LocalhostContext(ssl.SSLContext):
    """Verifies the fixture's certificate for "localhost" whatever host
    name the client library passes."""

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname="localhost", **kwargs)


def tls_context(cert):
    ctx = LocalhostContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert)
    return ctx


def maildir_flags(name):
    """The flags of a Maildir file name ("...:2,FS")."""
    _, sep, info = name.rpartition(":2,")
    return set(info) if sep else set()


IMAP_OF_MAILDIR = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                   "T": "\\Deleted"}


# --- the shared instance -------------------------------------------------------

_shared = None
_users = itertools.count(1)


def shared():
    global _shared
    if _shared is None:
        mc = Instance(testd=TESTD)
        mc.__enter__()
        try:
            mc.start()
        except BaseException:
            mc.__exit__(*sys.exc_info())
            raise
        _shared = mc
    return _shared


def tearDownModule():
    global _shared
    mc, _shared = _shared, None
    if mc is None:
        return
    try:
        status = mc.stop()
    finally:
        mc.__exit__(None, None, None)     # raises on sanitizer reports (leaks show at exit)
    if status != 0:
        raise AssertionError(f"master exit status {status}")


# Every user starts with these, subscribed (SPEC 6).
STANDARD = {"INBOX", "Sent", "Drafts", "Trash", "Junk"}


def stored_list(mc, user, mailbox="INBOX"):
    """`mailctl message list --json`."""
    return mc.message_list(user, mailbox)


def stored_messages(mc, user, mailbox="INBOX"):
    """Every message of a mailbox as stored (bytes), in UID order."""
    return [mc.message_bytes(user, mailbox, m["uid"]) for m in stored_list(mc, user, mailbox)]


def deliver(mc, rcpts, content, sender="sender@remote.example"):
    with smtplib.SMTP("127.0.0.1", int(mc.settings["smtpd_port"]), local_hostname="client.example",
                      timeout=TIMEOUT) as s:
        refused = s.sendmail(sender, rcpts if isinstance(rcpts, list) else [rcpts], content)
    if refused:
        raise AssertionError(f"refused: {refused}")


def deliver_many(mc, rcpts, contents, sessions=8):
    """Deliver contents (a list) over several SMTP sessions at once (smtpd
    commits concurrent messages together); the order is not kept."""
    chunks = [contents[i::sessions] for i in range(sessions)]

    def run(chunk):
        with smtplib.SMTP("127.0.0.1", int(mc.settings["smtpd_port"]),
                          local_hostname="client.example", timeout=60) as s:
            for c in chunk:
                refused = s.sendmail("bulk@remote.example", rcpts, c)
                if refused:
                    raise AssertionError(f"refused: {refused}")

    with concurrent.futures.ThreadPoolExecutor(sessions) as ex:
        for f in [ex.submit(run, c) for c in chunks if c]:
            f.result()


class ImapCase(unittest.TestCase):
    """Base: the shared instance, fresh users, and per-test crash and
    sanitizer checks."""

    @classmethod
    def setUpClass(cls):
        cls.mc = shared()
        cls.port = int(cls.mc.settings["imap_port"])
        cls.imaps_port = int(cls.mc.settings["imaps_port"])
        cls.smtp_port = int(cls.mc.settings["smtpd_port"])

    def setUp(self):
        self.reports_before = self.mc.sanitizer_mark()
        self.pids_before = (self.mc.pids_of("imapd"), self.mc.pids_of("smtpd"))

    def tearDown(self):
        self.mc.check_sanitizer_since(self.reports_before)
        after = (self.mc.pids_of("imapd"), self.mc.pids_of("smtpd"))
        if after != self.pids_before:
            log = [l for l in self.mc.read_log().splitlines() if "imapd" in l or "smtpd" in l]
            self.fail(f"daemon processes changed during the test (crash?): "
                      f"{self.pids_before} -> {after}\n" + "\n".join(log[-30:]))

    @classmethod
    def new_user(cls, prefix="u"):
        """A new user of the shared instance: (name, address)."""
        name = f"{prefix}{next(_users)}"
        cls.mc.add_user(name, PASSWORD)
        return name, f"{name}@example.test"

    def user(self, prefix="u"):
        return self.new_user(prefix)

    def deliver(self, rcpt, content):
        deliver(self.mc, rcpt, content)

    def connect(self, login=None, select=None, tls=None, port=None):
        c = Imap(port or self.port, tls_context=tls)
        self.addCleanup(c.close)
        if login:
            c.login(login)
        if select:
            c.select(select)
        return c

    def assertStatus(self, result, status, code=None):
        self.assertEqual(result.status, status, result)
        if code is not None:
            self.assertTrue(result.code.split(" ")[0] == code, f"expected [{code}]: {result}")

    def stored(self, user, mailbox="INBOX"):
        return stored_messages(self.mc, user, mailbox)


# --- logging in ------------------------------------------------------------------

class Login(ImapCase):
    def test_login_by_name_ok_with_capability_code(self):
        name, _ = self.user()
        c = self.connect()
        r = c.cmd(f"LOGIN {name} {PASSWORD}")
        self.assertStatus(r, "OK", "CAPABILITY")
        self.assertIn("IMAP4rev1", r.code.split())
        self.assertEqual(c.ok("SELECT INBOX").code, "READ-WRITE")

    def test_login_by_address_domain_case_insensitive(self):
        name, addr = self.user()
        c = self.connect()
        self.assertStatus(c.cmd(f"LOGIN {name}@EXAMPLE.Test {PASSWORD}"), "OK")
        c2 = self.connect()
        self.assertStatus(c2.cmd(f"LOGIN {quote(addr)} {quote(PASSWORD)}"), "OK")

    def test_login_by_alias_address(self):
        name, _ = self.user()
        self.mc.mailctl("alias", "add", f"alias-{name}@example.test", name, check=True)
        c = self.connect()
        self.assertStatus(c.cmd(f"LOGIN alias-{name}@example.test {PASSWORD}"), "OK")

    def test_password_with_quote_backslash_space_and_utf8(self):
        import base64
        name = f"pw{next(_users)}"
        password = 'p"a\\ss w\u00f6rd'
        pw = password.encode()
        self.mc.add_user(name, password)
        c = self.connect()
        c.send(f"a1 LOGIN {name} {{{len(pw)}}}\r\n".encode())
        self.assertTrue(c.response().startswith(b"+"))
        c.send(pw + b"\r\n")
        self.assertStatus(c.read_until_tagged("a1"), "OK", "CAPABILITY")
        c = self.connect()
        ir = base64.b64encode(b"\0" + name.encode() + b"\0" + pw).decode()
        self.assertStatus(c.cmd(f"AUTHENTICATE PLAIN {ir}"), "OK")
        c = self.connect()
        self.assertStatus(c.cmd(b"LOGIN " + name.encode() + b' "' +
                                pw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'), "OK",
                          "CAPABILITY")

    def test_login_wrong_password_no_authenticationfailed_after_delay(self):
        name, _ = self.user()
        c = self.connect()
        t0 = time.monotonic()
        r = c.cmd(f"LOGIN {name} wrong-password")
        elapsed = time.monotonic() - t0
        self.assertStatus(r, "NO", "AUTHENTICATIONFAILED")
        self.assertGreaterEqual(elapsed, 0.2, "a failed login is answered after a delay")
        self.assertStatus(c.cmd("SELECT INBOX"), "BAD")      # still not logged in
        self.assertStatus(c.cmd(f"LOGIN {name} {PASSWORD}"), "OK")

    def test_login_unknown_user_same_reply_as_wrong_password(self):
        c = self.connect()
        r = c.cmd("LOGIN nobody-at-all whatever")
        self.assertStatus(r, "NO", "AUTHENTICATIONFAILED")
        self.assertEqual(r.text, "[AUTHENTICATIONFAILED] Authentication failed.")

    def test_login_with_literals(self):
        name, _ = self.user()
        c = self.connect()
        c.send(f"a1 LOGIN {{{len(name)}}}\r\n")
        self.assertTrue(c.response().startswith(b"+"))
        c.send(f"{name} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n")
        self.assertStatus(c.read_until_tagged("a1"), "OK")

    def test_authenticate_plain_sasl_ir(self):
        import base64
        name, _ = self.user()
        c = self.connect()
        ir = base64.b64encode(f"\0{name}\0{PASSWORD}".encode()).decode()
        self.assertStatus(c.cmd(f"AUTHENTICATE PLAIN {ir}"), "OK")
        self.assertStatus(c.cmd("SELECT INBOX"), "OK")

    def test_authenticate_plain_with_continuation(self):
        import base64
        name, _ = self.user()
        c = self.connect()
        c.send("a1 AUTHENTICATE PLAIN\r\n")
        cont = c.response()
        self.assertTrue(cont == b"+" or cont.startswith(b"+ "), cont)
        c.send(base64.b64encode(f"{name}\0{name}\0{PASSWORD}".encode()) + b"\r\n")
        self.assertStatus(c.read_until_tagged("a1"), "OK")
        self.assertStatus(c.cmd("SELECT INBOX"), "OK")

    def test_authenticate_plain_as_another_user_refused(self):
        import base64
        name, _ = self.user()
        other, _ = self.user()
        c = self.connect()
        ir = base64.b64encode(f"{other}\0{name}\0{PASSWORD}".encode()).decode()
        self.assertStatus(c.cmd(f"AUTHENTICATE PLAIN {ir}"), "NO")
        self.assertStatus(c.cmd("SELECT INBOX"), "BAD")

    def test_authenticate_plain_wrong_password_no(self):
        import base64
        name, _ = self.user()
        c = self.connect()
        ir = base64.b64encode(f"\0{name}\0nope".encode()).decode()
        self.assertStatus(c.cmd(f"AUTHENTICATE PLAIN {ir}"), "NO", "AUTHENTICATIONFAILED")

    def test_authenticate_cancelled_with_star_bad_session_goes_on(self):
        c = self.connect()
        c.send("a1 AUTHENTICATE PLAIN\r\n")
        self.assertTrue(c.response().startswith(b"+"))
        c.send("*\r\n")
        self.assertStatus(c.read_until_tagged("a1"), "BAD")
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_authenticate_unknown_mechanism_no(self):
        c = self.connect()
        self.assertIn(c.cmd("AUTHENTICATE CRAM-MD5").status, ("NO", "BAD"))
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_capability_before_and_after_login(self):
        name, _ = self.user()
        c = self.connect()
        before = set(c.ok("CAPABILITY").matching(r"^CAPABILITY ")[0].split()[1:])
        for cap in ("IMAP4rev1", "IMAP4rev2", "STARTTLS", "AUTH=PLAIN", "SASL-IR", "LITERAL+",
                    "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE",
                    "CHILDREN", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE",
                    "ESEARCH"):
            self.assertIn(cap, before)
        self.assertNotIn("LOGINDISABLED", before, "loopback may always log in")
        self.assertIn(f"APPENDLIMIT={52428800}", before)
        greeting = c.greeting.decode()
        self.assertTrue(greeting.startswith("* OK [CAPABILITY IMAP4rev1"), greeting)
        c.login(name)
        after = set(c.ok("CAPABILITY").matching(r"^CAPABILITY ")[0].split()[1:])
        self.assertIn("IMAP4rev1", after)
        self.assertIn("IDLE", after)
        for cap in ("STARTTLS", "AUTH=PLAIN", "LOGINDISABLED"):
            self.assertNotIn(cap, after)

    @unittest.skip("LOGINDISABLED needs a client address that is not loopback (loopback may "
                   "always log in in plaintext); this suite talks on loopback only")
    def test_logindisabled_and_plaintext_refused_when_not_loopback(self):
        pass

    def test_commands_needing_login_refused_before_login(self):
        c = self.connect()
        for cmd in ("SELECT INBOX", "LIST \"\" \"*\"", "STATUS INBOX (MESSAGES)",
                    "FETCH 1 (FLAGS)", "UID FETCH 1 (FLAGS)", "APPEND INBOX {0+}\r\n",
                    "EXPUNGE", "IDLE"):
            r = c.cmd(cmd)
            self.assertIn(r.status, ("BAD", "NO"), f"{cmd}: {r}")
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_id_answers_with_server_id(self):
        c = self.connect()
        r = c.ok('ID ("name" "test-suite" "version" "1")')
        self.assertRegex(r.lines()[0], r'^ID \("name" "mailcore"')
        self.assertStatus(c.cmd("ID NIL"), "OK")

    def test_enable_imap4rev2_no_recent_and_esearch(self):
        name, addr = self.user()
        self.deliver(addr, message("rev2"))
        c = self.connect(login=name)
        self.assertEqual(c.ok("ENABLE IMAP4rev2").lines(), ["ENABLED IMAP4rev2"])
        r = c.select()
        self.assertFalse(r.matching(r"RECENT"), "IMAP4rev2 has no RECENT response")
        (_, it), = c.ok("FETCH 1 FLAGS").fetches()
        self.assertNotIn("\\Recent", flag_set(it["FLAGS"]), "IMAP4rev2 has no \\Recent flag")
        r = c.ok("SEARCH ALL")
        self.assertEqual(r.lines(), [f'ESEARCH (TAG "{r.tag}") ALL 1'])

    def test_enable_utf8_accept_only_when_advertised_names_consistent(self):
        name, _ = self.user()
        c = self.connect(login=name)
        caps = c.ok("CAPABILITY").matching(r"^CAPABILITY ")[0].split()
        enabled = c.ok("ENABLE UTF8=ACCEPT").lines()
        if "UTF8=ACCEPT" not in caps:
            self.assertEqual(enabled, ["ENABLED"],
                             "RFC 5161: an extension the server does not advertise is not enabled")
            return
        c.ok('CREATE "Entw&APw-rfe"')
        names = [n for n, _, _ in list_entries(c.ok('LIST "" "Entw*"'))]
        self.assertEqual(names, ["Entw\u00fcrfe"], "UTF8=ACCEPT sessions see UTF-8 names")

    def test_logout_bye_ok_then_close(self):
        c = self.connect()
        r = c.cmd("LOGOUT")
        self.assertStatus(r, "OK")
        self.assertTrue(r.lines()[0].startswith("BYE"), r)
        self.assertTrue(c.closed_by_server())

    def test_imaplib_login_select_fetch(self):
        name, addr = self.user()
        content = message("imaplib")
        self.deliver(addr, content)
        with imaplib.IMAP4("127.0.0.1", self.port, timeout=TIMEOUT) as m:
            m.login(name, PASSWORD)
            typ, data = m.select("INBOX")
            self.assertEqual((typ, data), ("OK", [b"1"]))
            typ, data = m.fetch("1", "(BODY.PEEK[])")
            self.assertEqual(typ, "OK")
            self.assertEqual(split_trace(data[0][1])[1], content)
            m.logout()


# --- TLS -----------------------------------------------------------------------

class Tls(ImapCase):
    def test_starttls_then_login_over_tls(self):
        name, _ = self.user()
        c = self.connect()
        self.assertStatus(c.cmd("STARTTLS"), "OK")
        c.starttls(tls_context(self.mc.cert))
        r = c.cmd_within("CAPABILITY", 5)
        self.assertIsNotNone(r, "no answer to CAPABILITY within 5 s after the TLS handshake")
        caps = r.matching(r"^CAPABILITY ")[0].split()
        self.assertNotIn("STARTTLS", caps)
        self.assertIn("AUTH=PLAIN", caps)
        c.login(name)
        self.assertStatus(c.cmd("SELECT INBOX"), "OK")

    def test_starttls_injection_pipelined_login_never_answered(self):
        name, _ = self.user()
        c = self.connect()
        c.send(f"a STARTTLS\r\nb LOGIN {name} {PASSWORD}\r\n")
        r = c.read_until_tagged("a")
        self.assertStatus(r, "OK")
        self.assertEqual(c.buf, b"", "nothing may follow the STARTTLS OK in plaintext")
        try:
            c.starttls(tls_context(self.mc.cert))
        except (ssl.SSLError, OSError) as e:
            self.fail(f"TLS handshake after the injected command failed: {e!r}")
        r = c.cmd_within("NOOP", 5, tag="c")
        self.assertIsNotNone(r, "no answer to NOOP within 5 s after the TLS handshake")
        self.assertStatus(r, "OK")
        self.assertEqual(r.untagged, [])
        r = c.cmd("SELECT INBOX", tag="d")
        self.assertStatus(r, "BAD")         # the injected LOGIN did not log us in
        self.assertNotIn(b"\r\nb ", c.pending(0.5))

    def test_starttls_inside_tls_refused(self):
        c = self.connect()
        self.assertStatus(c.cmd("STARTTLS"), "OK")
        c.starttls(tls_context(self.mc.cert))
        r = c.cmd_within("STARTTLS", 5)
        self.assertIsNotNone(r, "no answer to STARTTLS within 5 s after the TLS handshake")
        self.assertStatus(r, "BAD")
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_starttls_after_login_refused(self):
        name, _ = self.user()
        c = self.connect(login=name)
        self.assertIn(c.cmd("STARTTLS").status, ("BAD", "NO"))

    def test_imaps_greeting_and_login(self):
        name, addr = self.user()
        content = message("over imaps")
        self.deliver(addr, content)
        c = self.connect(tls=tls_context(self.mc.cert), port=self.imaps_port)
        self.assertTrue(c.greeting.startswith(b"* OK"), c.greeting)
        caps = c.ok("CAPABILITY").matching(r"^CAPABILITY ")[0].split()
        self.assertNotIn("STARTTLS", caps)
        c.login(name)
        c.select()
        (seq, items), = c.ok("FETCH 1 BODY.PEEK[]").fetches()
        self.assertEqual(split_trace(items["BODY[]"])[1], content)

    def test_imaplib_starttls(self):
        name, _ = self.user()
        with imaplib.IMAP4("127.0.0.1", self.port, timeout=TIMEOUT) as m:
            self.assertEqual(m.starttls(ssl_context=tls_context(self.mc.cert))[0], "OK")
            self.assertEqual(m.login(name, PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
            m.logout()

    def test_curl_starttls_required_and_imaps(self):
        name, addr = self.user("curl")
        content = message("curl tls")
        self.deliver(addr, content)
        for url in (f"imap://localhost:{self.port}/INBOX;UID=1",
                    f"imaps://localhost:{self.imaps_port}/INBOX;UID=1"):
            r = subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT), "--ssl-reqd",
                                "--cacert", self.mc.cert, "--resolve",
                                f"localhost:{self.port}:127.0.0.1", "--resolve",
                                f"localhost:{self.imaps_port}:127.0.0.1", url,
                                "--user", f"{name}:{PASSWORD}"],
                               capture_output=True, timeout=TIMEOUT + 10)
            self.assertEqual(r.returncode, 0, f"{url}: {r.stderr.decode(errors='replace')}")
            self.assertEqual(split_trace(r.stdout)[1], content, url)

    def test_imaps_imaplib(self):
        name, _ = self.user()
        with imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port,
                               ssl_context=tls_context(self.mc.cert), timeout=TIMEOUT) as m:
            self.assertEqual(m.login(name, PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX")[0], "OK")
            m.logout()


# --- SELECT and EXAMINE ------------------------------------------------------------

class Select(ImapCase):
    def test_select_responses(self):
        name, addr = self.user()
        for i in range(3):
            self.deliver(addr, message(f"select {i}"))
        c = self.connect(login=name)
        r = c.cmd("SELECT INBOX")
        self.assertStatus(r, "OK", "READ-WRITE")
        lines = r.lines()
        self.assertIn("3 EXISTS", lines)
        self.assertIn("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)", lines)
        perm = r.matching(r"^OK \[PERMANENTFLAGS ")
        self.assertEqual(len(perm), 1, r)
        self.assertRegex(perm[0], r"^OK \[PERMANENTFLAGS \(\\Answered \\Flagged \\Deleted "
                                  r"\\Seen \\Draft \\\*\)\]")
        self.assertEqual(len(r.matching(r"^OK \[UIDVALIDITY [1-9]\d*\]")), 1, r)
        self.assertEqual(len(r.matching(r"^OK \[UIDNEXT 4\]")), 1, r)
        self.assertEqual(r.matching(r"^OK \[UNSEEN "), ["OK [UNSEEN 1] First unseen."])

    def test_uidvalidity_stable_across_sessions_and_status(self):
        name, addr = self.user()
        self.deliver(addr, message("uv"))
        values = []
        for _ in range(3):
            c = self.connect(login=name)
            r = c.select()
            values.append(re.search(r"UIDVALIDITY (\d+)", " ".join(r.lines())).group(1))
            st = c.ok("STATUS INBOX (UIDVALIDITY)").lines()[0]
            self.assertIn(f"UIDVALIDITY {values[-1]}", st)
            c.close()
        self.assertEqual(len(set(values)), 1, values)
        other, _ = self.user()
        c = self.connect(login=other)
        self.assertNotIn(f"UIDVALIDITY {values[0]}", c.ok("STATUS INBOX (UIDVALIDITY)").lines()[0],
                         "a different mailbox has a different UIDVALIDITY")

    def test_uidnext_grows_with_each_delivery_and_uids_ascend(self):
        name, addr = self.user()
        c = self.connect(login=name)
        self.assertTrue(c.select().matching(r"^OK \[UIDNEXT 1\]"))
        for i in range(3):
            self.deliver(addr, message(f"un {i}"))
        c2 = self.connect(login=name)
        self.assertTrue(c2.select().matching(r"^OK \[UIDNEXT 4\]"))
        uids = [int(items["UID"]) for _, items in c2.ok("FETCH 1:* (UID)").fetches()]
        self.assertEqual(uids, [1, 2, 3])

    def test_examine_read_only(self):
        name, addr = self.user()
        self.deliver(addr, message("ro"))
        c = self.connect(login=name)
        r = c.cmd("EXAMINE INBOX")
        self.assertStatus(r, "OK", "READ-ONLY")
        self.assertIn("1 EXISTS", r.lines())
        perm = r.matching(r"PERMANENTFLAGS")
        self.assertEqual(perm[:1], ["OK [PERMANENTFLAGS ()] Read-only mailbox."])
        self.assertIn(c.cmd("STORE 1 +FLAGS (\\Seen)").status, ("NO", "BAD"))
        c.ok("FETCH 1 BODY[]")          # not PEEK, but EXAMINE: \Seen must not be set
        c2 = self.connect(login=name, select="INBOX")
        (_, items), = c2.ok("FETCH 1 FLAGS").fetches()
        self.assertNotIn("\\Seen", flag_set(items["FLAGS"]))

    def test_recent_first_session_sees_it_second_does_not(self):
        name, addr = self.user()
        self.deliver(addr, message("recent 1"))
        self.deliver(addr, message("recent 2"))
        c1 = self.connect(login=name)
        r = c1.select()
        self.assertIn("2 RECENT", r.lines())
        fl = [flag_set(i["FLAGS"]) for _, i in c1.ok("FETCH 1:* FLAGS").fetches()]
        self.assertEqual(fl, [{"\\Recent"}, {"\\Recent"}])
        c1.close()
        c2 = self.connect(login=name)
        self.assertIn("0 RECENT", c2.select().lines())
        fl = [flag_set(i["FLAGS"]) for _, i in c2.ok("FETCH 1:* FLAGS").fetches()]
        self.assertEqual(fl, [set(), set()])

    def test_recent_examine_does_not_clear_recent(self):
        name, addr = self.user()
        self.deliver(addr, message("recent ex"))
        c1 = self.connect(login=name)
        self.assertIn("1 RECENT", c1.ok("EXAMINE INBOX").lines())
        c1.close()
        c2 = self.connect(login=name)
        self.assertIn("1 RECENT", c2.select().lines())

    def test_recent_new_message_recent_in_only_one_of_two_sessions(self):
        # RFC 3501 2.3.2: a new message is \Recent in one session only.
        name, addr = self.user()
        c1 = self.connect(login=name, select="INBOX")
        self.deliver(addr, message("recent shared"))
        r = c1.ok("NOOP")
        self.assertIn("1 EXISTS", r.lines())
        self.assertIn("1 RECENT", r.lines())
        c2 = self.connect(login=name)
        r2 = c2.select()
        self.assertIn("0 RECENT", r2.lines(),
                      "session 1 was told of the message as \\Recent already")

    def test_unseen_is_the_first_unseen_sequence_number(self):
        name, addr = self.user()
        for i in range(4):
            self.deliver(addr, message(f"unseen {i}"))
        c = self.connect(login=name, select="INBOX")
        c.ok("STORE 1:2 +FLAGS.SILENT (\\Seen)")
        c.ok("STORE 4 +FLAGS.SILENT (\\Seen)")
        c2 = self.connect(login=name)
        self.assertEqual(c2.select().matching(r"^OK \[UNSEEN "), ["OK [UNSEEN 3] First unseen."])

    def test_select_missing_mailbox_no_and_nothing_selected(self):
        name, _ = self.user()
        c = self.connect(login=name, select="INBOX")
        r = c.cmd("SELECT Nonexistent")
        self.assertStatus(r, "NO")
        self.assertStatus(c.cmd("FETCH 1 FLAGS"), "BAD")     # the failed SELECT deselected

    def test_select_mailbox_name_inbox_case_insensitive(self):
        name, addr = self.user()
        self.deliver(addr, message("inbox case"))
        c = self.connect(login=name)
        self.assertIn("1 EXISTS", c.select("iNbOx").lines())


# --- mailboxes -----------------------------------------------------------------------

def list_entries(result):
    """LIST/LSUB responses as [(name, set(attrs), delimiter)]."""
    out = []
    for u in result.untagged:
        m = re.match(rb"(LIST|LSUB) ", u)
        if not m:
            continue
        items, _ = parse_data(u[m.end():])
        attrs, delim, name = items[0], items[1], items[2]
        if isinstance(name, bytes):
            name = name.decode()
        out.append((str(name), {str(a) for a in attrs}, delim))
    return out


def status_of(result, mailbox):
    for u in result.untagged:
        if u.startswith(b"STATUS "):
            items, _ = parse_data(u[7:])
            name = items[0].decode() if isinstance(items[0], bytes) else str(items[0])
            if name == mailbox:
                vals = items[1]
                return {str(vals[i]).upper(): int(vals[i + 1]) for i in range(0, len(vals), 2)}
    raise AssertionError(f"no STATUS for {mailbox}: {result}")


class Mailboxes(ImapCase):
    def test_list_all_default_mailboxes_with_special_use(self):
        name, _ = self.user()
        c = self.connect(login=name)
        entries = list_entries(c.ok('LIST "" "*"'))
        self.assertEqual([e[0] for e in entries], ["INBOX", "Drafts", "Junk", "Sent", "Trash"])
        attrs = {n: a for n, a, _ in entries}
        self.assertIn("\\Sent", attrs["Sent"])
        self.assertIn("\\Drafts", attrs["Drafts"])
        self.assertIn("\\Trash", attrs["Trash"])
        self.assertIn("\\Junk", attrs["Junk"])
        self.assertFalse({"\\Sent", "\\Drafts", "\\Trash", "\\Junk"} & attrs["INBOX"])
        self.assertTrue(all(d == "/" for _, _, d in entries))
        r = c.ok('LIST "" ""')
        self.assertEqual(r.lines(), ['LIST (\\Noselect) "/" ""'])

    def test_list_percent_and_hierarchy(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE Lists/a")
        c.ok("CREATE Lists/b/c")
        top = {n: a for n, a, _ in list_entries(c.ok('LIST "" "%"'))}
        self.assertEqual(sorted(top), ["Drafts", "INBOX", "Junk", "Lists", "Sent", "Trash"])
        self.assertIn("\\HasChildren", top["Lists"])
        self.assertIn("\\HasNoChildren", top["Sent"])
        sub = [n for n, _, _ in list_entries(c.ok('LIST "Lists/" "%"'))]
        self.assertEqual(sub, ["Lists/a", "Lists/b"])
        sub = [n for n, _, _ in list_entries(c.ok('LIST "" "Lists/*"'))]
        self.assertEqual(sub, ["Lists/a", "Lists/b", "Lists/b/c"])
        self.assertEqual([n for n, _, _ in list_entries(c.ok('LIST "" "inbox"'))], ["INBOX"])
        self.assertEqual(list_entries(c.ok('LIST "" "Nothing*"')), [])

    def test_inbox_children_any_case_of_inbox(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE inbox/Sub")
        self.assertEqual([n for n, _, _ in list_entries(c.ok('LIST "" "INBOX/*"'))], ["INBOX/Sub"])
        self.assertIn("0 EXISTS", c.ok("SELECT Inbox/Sub").lines())
        top = {n: a for n, a, _ in list_entries(c.ok('LIST "" "%"'))}
        self.assertIn("\\HasChildren", top["INBOX"])

    def test_list_extended_multiple_patterns(self):
        name, _ = self.user()
        c = self.connect(login=name)
        names = [n for n, _, _ in list_entries(c.ok('LIST "" ("INBOX" "Tr*")'))]
        self.assertEqual(names, ["INBOX", "Trash"])

    def test_list_extended_subscribed_selection(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE Projects")
        c.ok("SUBSCRIBE Projects")
        c.ok("SUBSCRIBE INBOX")
        c.ok("CREATE Other")
        entries = {n: a for n, a, _ in list_entries(c.ok('LIST (SUBSCRIBED) "" "*"'))}
        # The five standard mailboxes are subscribed from the start.
        self.assertEqual(sorted(entries), sorted(STANDARD | {"Projects"}))
        self.assertIn("\\Subscribed", entries["Projects"])
        plain = {n: a for n, a, _ in list_entries(c.ok('LIST "" "*" RETURN (SUBSCRIBED)'))}
        self.assertIn("\\Subscribed", plain["Projects"])
        self.assertNotIn("\\Subscribed", plain["Other"])

    def test_list_return_special_use_and_status(self):
        name, addr = self.user()
        self.deliver(addr, message("ls 1"))
        self.deliver(addr, message("ls 2"))
        c = self.connect(login=name)
        r = c.ok('LIST "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))')
        self.assertEqual(status_of(r, "INBOX"), {"MESSAGES": 2, "UNSEEN": 2})
        self.assertEqual(status_of(r, "Sent"), {"MESSAGES": 0, "UNSEEN": 0})
        # RFC 5819: each STATUS follows its LIST
        kinds = [l.split(" ")[0] for l in r.lines()]
        self.assertEqual(kinds, ["LIST", "STATUS"] * 5)
        r = c.ok('LIST (SPECIAL-USE) "" "*"')
        self.assertEqual(sorted(n for n, _, _ in list_entries(r)),
                         ["Drafts", "Junk", "Sent", "Trash"])

    def test_lsub_lists_subscribed_only(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE Folder")
        c.ok("CREATE Other")
        c.ok("SUBSCRIBE Folder")
        self.assertEqual({n for n, _, _ in list_entries(c.ok('LSUB "" "*"'))},
                         STANDARD | {"Folder"})
        c.ok("UNSUBSCRIBE Folder")
        self.assertEqual({n for n, _, _ in list_entries(c.ok('LSUB "" "*"'))}, STANDARD)

    def test_namespace_personal_with_slash(self):
        name, _ = self.user()
        c = self.connect(login=name)
        self.assertEqual(c.ok("NAMESPACE").lines(), ['NAMESPACE (("" "/")) NIL NIL'])

    def test_create_with_parents_and_existing_refused(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE a/b/c")
        names = [n for n, _, _ in list_entries(c.ok('LIST "" "a*"'))]
        self.assertEqual(names, ["a", "a/b", "a/b/c"])
        self.assertIn("0 EXISTS", c.ok("SELECT a/b").lines())
        self.assertStatus(c.cmd("CREATE a/b/c"), "NO", "ALREADYEXISTS")
        self.assertStatus(c.cmd("CREATE INBOX"), "NO")
        c.ok("CREATE d/")               # a trailing delimiter: the name is "d"
        self.assertEqual([n for n, _, _ in list_entries(c.ok('LIST "" "d*"'))], ["d"])

    def test_delete_inbox_refused(self):
        name, _ = self.user()
        c = self.connect(login=name)
        self.assertStatus(c.cmd("DELETE INBOX"), "NO")
        self.assertStatus(c.cmd("DELETE inbox"), "NO")
        self.assertIn("INBOX", [n for n, _, _ in list_entries(c.ok('LIST "" "*"'))])

    def test_delete_with_children_leaves_noselect_name_until_last_child_goes(self):
        # RFC 3501 6.3.4: the messages go, the name stays as \Noselect.
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE p/q")
        c.ok("DELETE p")
        entries = {n: a for n, a, _ in list_entries(c.ok('LIST "" "p*"'))}
        self.assertIn("\\Noselect", entries["p"])
        self.assertStatus(c.cmd("SELECT p"), "NO")
        self.assertStatus(c.cmd("DELETE p"), "NO", "NONEXISTENT")
        c.ok("DELETE p/q")
        self.assertEqual(list_entries(c.ok('LIST "" "p*"')), [])
        self.assertStatus(c.cmd("DELETE p"), "NO", "NONEXISTENT")

    def test_delete_then_create_is_a_new_empty_mailbox(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE Box")
        c.ok("APPEND Box {%d+}\r\n%s" % (len(message("x")), message("x").decode()))
        uv1 = status_of(c.ok("STATUS Box (MESSAGES UIDVALIDITY)"), "Box")
        self.assertEqual(uv1["MESSAGES"], 1)
        c.ok("DELETE Box")
        c.ok("CREATE Box")
        uv2 = status_of(c.ok("STATUS Box (MESSAGES UIDVALIDITY)"), "Box")
        self.assertEqual(uv2["MESSAGES"], 0)
        self.assertNotEqual(uv1["UIDVALIDITY"], uv2["UIDVALIDITY"])

    def test_rename_with_children(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE old/x/y")
        msg = message("in x")
        c.ok("APPEND old/x {%d+}\r\n%s" % (len(msg), msg.decode()))
        c.ok("RENAME old new")
        names = [n for n, _, _ in list_entries(c.ok('LIST "" "*"'))]
        self.assertIn("new", names)
        self.assertIn("new/x", names)
        self.assertIn("new/x/y", names)
        self.assertFalse([n for n in names if n.startswith("old")], names)
        self.assertEqual(status_of(c.ok("STATUS new/x (MESSAGES)"), "new/x"), {"MESSAGES": 1})

    def test_rename_into_new_hierarchy_creates_parents(self):
        # RFC 3501 6.3.5: superior names needed by RENAME are created.
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE Flat")
        c.ok("RENAME Flat Deep/er/Flat")
        top = {n: a for n, a, _ in list_entries(c.ok('LIST "" "%"'))}
        self.assertIn("Deep", top, "LIST % shows the new top level")
        self.assertIn("\\HasChildren", top["Deep"])
        self.assertEqual([n for n, _, _ in list_entries(c.ok('LIST "" "Deep/*"'))],
                         ["Deep/er", "Deep/er/Flat"])

    def test_mailbox_names_with_space_and_modified_utf7(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok('CREATE "My Folder"')
        c.ok('CREATE "Entw&APw-rfe"')
        names = [n for n, _, _ in list_entries(c.ok('LIST "" "*"'))]
        self.assertIn("My Folder", names)
        self.assertIn("Entw&APw-rfe", names)
        self.assertIn("0 EXISTS", c.ok('SELECT "My Folder"').lines())
        r = c.cmd(b'CREATE "Entw\xc3\xbcrfe"')
        self.assertIn(r.status, ("NO", "BAD"), "8-bit names need UTF8=ACCEPT")

    def test_rename_to_existing_refused(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE one")
        c.ok("CREATE two")
        self.assertStatus(c.cmd("RENAME one two"), "NO")
        self.assertStatus(c.cmd("RENAME missing three"), "NO")

    def test_arguments_to_commands_that_take_none_are_bad(self):
        name, _ = self.user()
        c = self.connect(login=name, select="INBOX")
        for cmd in ("NOOP extra", "CAPABILITY x", "NAMESPACE x", "CHECK x", "EXPUNGE 1",
                    "IDLE x", "UNSELECT x", "CLOSE x", "LOGOUT x"):
            r = c.cmd(cmd)
            self.assertStatus(r, "BAD")
            self.assertIn("takes no arguments", r.text)
        self.assertStatus(c.cmd("NOOP"), "OK")
        self.assertStatus(c.cmd("UNSELECT"), "OK")

    def test_rename_below_itself_refused_inbox_allowed(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE a")
        self.assertStatus(c.cmd("RENAME a a/b"), "NO", "CANNOT")
        self.assertStatus(c.cmd("RENAME a a/b/c"), "NO", "CANNOT")
        names = [l for l in c.ok('LIST "" "a*"').lines()]
        self.assertEqual(len(names), 1, names)
        c.ok("RENAME a ab")                 # a prefix that is not a parent
        c.ok("RENAME INBOX INBOX/old")
        self.assertEqual(len(c.ok('LIST "" "INBOX*"').lines()), 2)

    def test_rename_inbox_moves_messages_inbox_stays_empty(self):
        name, addr = self.user()
        contents = [message(f"ri {i}") for i in range(3)]
        for m in contents:
            self.deliver(addr, m)
        c = self.connect(login=name, select="INBOX")
        c.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
        c.ok("UNSELECT")
        c.ok("RENAME INBOX Old-Inbox")
        self.assertEqual(status_of(c.ok("STATUS INBOX (MESSAGES)"), "INBOX"), {"MESSAGES": 0})
        self.assertEqual(status_of(c.ok("STATUS Old-Inbox (MESSAGES)"), "Old-Inbox"),
                         {"MESSAGES": 3})
        c.select("Old-Inbox")
        got = [split_trace(i["BODY[]"])[1] for _, i in c.ok("FETCH 1:* BODY.PEEK[]").fetches()]
        self.assertEqual(got, contents)
        flags = [flag_set(i["FLAGS"]) - {"\\Recent"} for _, i in c.ok("FETCH 1:* FLAGS").fetches()]
        self.assertEqual(flags, [set(), {"\\Flagged"}, set()], "flags moved with the messages")
        self.deliver(addr, message("after rename"))
        self.assertEqual(status_of(c.ok("STATUS INBOX (MESSAGES)"), "INBOX"), {"MESSAGES": 1})

    def test_subscribe_unsubscribe(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.ok("CREATE Notes")
        c.ok("SUBSCRIBE Notes")
        r = c.ok('LIST "" "*" RETURN (SUBSCRIBED)')
        subs = {n for n, a, _ in list_entries(r) if "\\Subscribed" in a}
        self.assertEqual(subs, STANDARD | {"Notes"})
        c.ok("UNSUBSCRIBE Notes")
        c.ok("UNSUBSCRIBE Sent")
        r = c.ok('LIST "" "*" RETURN (SUBSCRIBED)')
        self.assertEqual({n for n, a, _ in list_entries(r) if "\\Subscribed" in a},
                         STANDARD - {"Sent"})

    def test_status_items(self):
        name, addr = self.user()
        contents = [message(f"st {i}", b"x" * (100 * i) + b"\r\n") for i in range(3)]
        for m in contents:
            self.deliver(addr, m)
        sizes = [len(raw) for raw in self.stored(name)]
        c = self.connect(login=name)
        st = status_of(c.ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT SIZE)"),
                       "INBOX")
        self.assertEqual(st["MESSAGES"], 3)
        self.assertEqual(st["UIDNEXT"], 4)
        self.assertEqual(st["UNSEEN"], 3)
        self.assertEqual(st["RECENT"], 3)
        self.assertEqual(st["SIZE"], sum(sizes))
        self.assertGreater(st["UIDVALIDITY"], 0)
        c2 = self.connect(login=name, select="INBOX")
        c2.ok("STORE 1 +FLAGS (\\Seen)")
        c2.close()
        st = status_of(c.ok("STATUS INBOX (UNSEEN RECENT MESSAGES)"), "INBOX")
        self.assertEqual(st, {"UNSEEN": 2, "RECENT": 0, "MESSAGES": 3})

    def test_status_size_follows_expunge(self):
        name, addr = self.user()
        for i in range(2):
            self.deliver(addr, message(f"sz {i}", b"y" * 1000 + b"\r\n"))
        sizes = [m["size"] for m in stored_list(self.mc, name)]
        c = self.connect(login=name, select="INBOX")
        self.assertEqual(status_of(c.ok("STATUS INBOX (SIZE MESSAGES)"), "INBOX"),
                         {"SIZE": sum(sizes), "MESSAGES": 2})
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        self.assertEqual(status_of(c.ok("STATUS INBOX (SIZE MESSAGES)"), "INBOX"),
                         {"SIZE": sizes[1], "MESSAGES": 1})

    def test_status_missing_mailbox_no(self):
        name, _ = self.user()
        c = self.connect(login=name)
        self.assertStatus(c.cmd("STATUS Missing (MESSAGES)"), "NO")
        self.assertStatus(c.cmd("STATUS INBOX (BOGUS)"), "BAD")


# --- mailbox names in UTF-8 (IMAP4rev2) ---------------------------------------------

DRAFTS_UTF8 = "Entw\u00fcrfe"                       # Entwürfe
AERGER_UTF8 = DRAFTS_UTF8 + "/\u00c4rger & Co"        # Entwürfe/Ärger & Co
NIHONGO = "\u65e5\u672c\u8a9e"                      # 日本語
PARTY = "Party \U0001f389"                          # Party 🎉, a surrogate pair in UTF-16
UTF7 = {DRAFTS_UTF8: "Entw&APw-rfe", AERGER_UTF8: "Entw&APw-rfe/&AMQ-rger &- Co",
        NIHONGO: "&ZeVnLIqe-", PARTY: "Party &2DzfiQ-"}


def literal(data):
    """A LITERAL+ literal of data (str as UTF-8, or bytes), for a command."""
    data = data.encode() if isinstance(data, str) else data
    return b"{%d+}\r\n" % len(data) + data


class Utf8Names(ImapCase):
    """RFC 9051 5.1: names are stored in modified UTF-7 (RFC 3501 5.1.3); an
    IMAP4rev2 session sends and sees them in UTF-8, '&' included as itself,
    while an IMAP4rev1 session keeps modified UTF-7."""

    def rev2(self, name):
        c = self.connect(login=name)
        self.assertEqual(c.ok("ENABLE IMAP4rev2").lines(), ["ENABLED IMAP4rev2"])
        return c

    def names(self, c, pattern, ref=""):
        return [n for n, _, _ in list_entries(c.ok(f"LIST {quote(ref)} {quote(pattern)}"))]

    def rev2_with_mailboxes(self):
        name, _ = self.user()
        c = self.rev2(name)
        for box in (AERGER_UTF8, NIHONGO, PARTY):
            c.ok(f"CREATE {quote(box)}")
        return name, c

    def test_rev2_creates_and_lists_utf8_names_as_quoted_strings(self):
        name, c = self.rev2_with_mailboxes()
        r = c.ok('LIST "" "*"')
        self.assertEqual([n for n, _, _ in list_entries(r)],
                         ["INBOX", "Drafts", DRAFTS_UTF8, AERGER_UTF8, "Junk", PARTY, "Sent",
                          "Trash", NIHONGO], "INBOX first, then in code point order")
        raw = b"\n".join(r.untagged)
        for box in (AERGER_UTF8, NIHONGO, PARTY):
            self.assertIn(quote(box).encode(), raw, "RFC 9051: UTF-8 in a quoted string")
        self.assertNotIn(b"&", raw.replace(b"& Co", b""), "no modified UTF-7 for IMAP4rev2")
        for box in (AERGER_UTF8, NIHONGO, PARTY):
            c.ok(f"SUBSCRIBE {quote(box)}")
        c.ok(f"UNSUBSCRIBE {quote(NIHONGO)}")
        lsub = [n for n, _, _ in list_entries(c.ok('LSUB "" "*"'))]
        self.assertEqual(lsub, ["INBOX", "Drafts", AERGER_UTF8, "Junk", PARTY, "Sent", "Trash"])
        # Stored in modified UTF-7: mailctl names the stored form.
        self.assertEqual(self.mc.message_list(name, UTF7[AERGER_UTF8]), [])

    def test_rev2_list_patterns_match_whole_characters(self):
        name, c = self.rev2_with_mailboxes()
        for box in ("\u00dcbersicht", "Gr\u00f6\u00dfe/H\u00f6he", "\u00e4\u00f6\u00fc"):
            c.ok(f"CREATE {quote(box)}")
        cases = {
            "\u00dc*": ["\u00dcbersicht"],
            "*\u00f6*": ["Gr\u00f6\u00dfe", "Gr\u00f6\u00dfe/H\u00f6he", "\u00e4\u00f6\u00fc"],
            "*\u00f6%": ["Gr\u00f6\u00dfe", "Gr\u00f6\u00dfe/H\u00f6he", "\u00e4\u00f6\u00fc"],
            "\u00e4%\u00fc": ["\u00e4\u00f6\u00fc"],
            "\u00e4\u00f6\u00fc": ["\u00e4\u00f6\u00fc"],
            "\u00f6*": [],
            DRAFTS_UTF8 + "/%": [AERGER_UTF8],
            "*&*": [AERGER_UTF8],
            "\u65e5*": [NIHONGO],
            "*\u672c*": [NIHONGO],
            "\u65e5%\u8a9e": [NIHONGO],
            "%\u8a9e": [NIHONGO],
            "*\U0001f389": [PARTY],
            "Party %": [PARTY],
            "Entw&APw-rfe*": [],
        }
        for pattern, want in cases.items():
            with self.subTest(pattern=pattern):
                self.assertEqual(sorted(self.names(c, pattern)), sorted(want))
        self.assertEqual(self.names(c, "%", DRAFTS_UTF8 + "/"), [AERGER_UTF8])
        self.assertEqual(self.names(c, "*", "Gr\u00f6\u00dfe/"), ["Gr\u00f6\u00dfe/H\u00f6he"])
        c.ok(f"SUBSCRIBE {quote(NIHONGO)}")
        c.ok(f"SUBSCRIBE {quote(PARTY)}")
        r = c.ok(f'LIST (SUBSCRIBED) "" ({quote(NIHONGO)} "Party*") RETURN (STATUS (MESSAGES))')
        self.assertEqual([n for n, _, _ in list_entries(r)], [PARTY, NIHONGO])
        self.assertEqual(status_of(r, NIHONGO), {"MESSAGES": 0})

    def test_rev2_select_append_status_copy_rename_delete(self):
        name, c = self.rev2_with_mailboxes()
        msg = message("f\u00fcr Co")
        r = c.ok(f"APPEND {quote(AERGER_UTF8)} ".encode() + literal(msg))
        self.assertIn("APPENDUID", r.code)
        r = c.ok(f"STATUS {quote(AERGER_UTF8)} (MESSAGES UIDNEXT)")
        self.assertTrue(r.untagged[0].startswith(b"STATUS " + quote(AERGER_UTF8).encode()), r)
        self.assertEqual(status_of(r, AERGER_UTF8), {"MESSAGES": 1, "UIDNEXT": 2})
        self.assertEqual(len(self.mc.message_list(name, UTF7[AERGER_UTF8])), 1)
        r = c.ok(f"SELECT {quote(AERGER_UTF8)}")
        self.assertIn("1 EXISTS", r.lines())
        c.ok(f"COPY 1 {quote(NIHONGO)}")
        r = c.cmd(f"COPY 1 {quote(NIHONGO + '2')}")
        self.assertStatus(r, "NO", "TRYCREATE")
        self.assertIn(NIHONGO + "2", r.text)
        c.ok(f"MOVE 1 {quote(PARTY)}")
        c.ok(f"EXAMINE {quote(NIHONGO)}")
        self.assertEqual(status_of(c.ok(f"STATUS {quote(PARTY)} (MESSAGES)"), PARTY),
                         {"MESSAGES": 1})
        r = c.ok(f"GETQUOTAROOT {quote(NIHONGO)}")
        self.assertTrue(r.untagged[0].startswith(b"QUOTAROOT " + quote(NIHONGO).encode()), r)
        c.ok("UNSELECT")
        prelim = "Vorl\u00e4ufig"                                    # Vorläufig
        c.ok(f"RENAME {quote(DRAFTS_UTF8)} {quote(prelim)}")
        self.assertEqual(self.names(c, prelim + "*"), [prelim, prelim + "/\u00c4rger & Co"])
        self.assertEqual(self.names(c, DRAFTS_UTF8 + "*"), [])
        japan = "\u65e5\u672c/\u8a9e"                                # 日本/語
        c.ok(f"RENAME {quote(NIHONGO)} {quote(japan)}")
        self.assertEqual(self.names(c, "\u65e5*"), ["\u65e5\u672c", japan])
        self.assertEqual(status_of(c.ok(f"STATUS {quote(japan)} (MESSAGES)"), japan),
                         {"MESSAGES": 1})
        for box in (PARTY, prelim + "/\u00c4rger & Co", japan):
            c.ok(f"DELETE {quote(box)}")
        self.assertEqual(self.names(c, "*\U0001f389*"), [])
        r = c.cmd(f"SELECT {quote(PARTY)}")
        self.assertStatus(r, "NO", "NONEXISTENT")
        self.assertIn(PARTY, r.text, "the name in the text as the client wrote it")

    def test_rev1_sees_modified_utf7_and_rev2_sees_rev1_names_in_utf8(self):
        name, c2 = self.rev2_with_mailboxes()
        c1 = self.connect(login=name)
        names1 = self.names(c1, "*")
        for box in (AERGER_UTF8, NIHONGO, PARTY):
            self.assertIn(UTF7[box], names1)
        self.assertIn("0 EXISTS", c1.select(UTF7[NIHONGO]).lines())
        self.assertStatus(c1.cmd(f"SELECT {quote(NIHONGO)}"), "NO", "CANNOT")
        c1.ok('CREATE "~peter/mail/&U,BTFw-/&ZeVnLIqe-"')
        c1.ok('CREATE "A &- B"')
        self.assertEqual(self.names(c2, "~peter/*"),
                         ["~peter/mail", "~peter/mail/\u53f0\u5317",
                          "~peter/mail/\u53f0\u5317/" + NIHONGO])
        self.assertEqual(self.names(c2, "A*"), ["A & B"])
        self.assertIn("0 EXISTS", c2.select("~peter/mail/\u53f0\u5317/" + NIHONGO).lines())
        # After ENABLE IMAP4rev2 the same session switches to UTF-8.
        c1.ok("ENABLE IMAP4rev2")
        self.assertEqual(self.names(c1, "A*"), ["A & B"])
        self.assertEqual(self.names(c1, "\u65e5*"), [NIHONGO])

    def test_rev2_ampersand_is_an_ordinary_character(self):
        name, _ = self.user()
        c2 = self.rev2(name)
        c1 = self.connect(login=name)
        c2.ok('CREATE "&AOQ-"')
        c2.ok('CREATE "Tom & Jerry"')
        c2.ok('CREATE "&"')
        self.assertEqual(sorted(self.names(c2, "*&*")), ["&", "&AOQ-", "Tom & Jerry"])
        self.assertEqual(sorted(self.names(c1, "*&*")), ["&-", "&-AOQ-", "Tom &- Jerry"])
        self.assertEqual(self.names(c1, "\u00e4"), [])
        c1.ok('CREATE "&AOQ-"')                         # modified UTF-7 for a rev1 session: ä
        self.assertEqual(self.names(c2, "\u00e4"), ["\u00e4"])
        self.assertEqual(self.names(c2, "&AOQ-"), ["&AOQ-"])

    def test_rev2_inbox_any_case_and_trailing_delimiter(self):
        name, _ = self.user()
        c = self.rev2(name)
        oil, overview = "\u00d6lf\u00e4sser", "\u00dcbersicht"       # Ölfässer, Übersicht
        c.ok(f"CREATE {quote(oil + '/')}")
        c.ok(f"CREATE {quote('inbox/' + overview)}")
        self.assertEqual(self.names(c, "\u00d6*"), [oil])
        self.assertEqual(self.names(c, "inbox/*"), ["INBOX/" + overview])
        self.assertIn("0 EXISTS", c.select("iNbOx/" + overview).lines())
        c.ok(f"DELETE {quote(oil + '/')}")
        self.assertEqual(self.names(c, "\u00d6*"), [])

    def test_rev2_invalid_utf8_and_overlong_names_refused(self):
        name, _ = self.user()
        c = self.rev2(name)
        for bad in (b"a\xffb", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"a\x01b", b"a\x7f",
                    "a%b".encode(), "\u00e4*".encode()):
            with self.subTest(bad=bad):
                self.assertStatus(c.cmd(b"CREATE " + literal(bad)), "NO", "CANNOT")
                self.assertStatus(c.cmd(b"SELECT " + literal(bad)), "NO", "CANNOT")
        # 94 CJK characters and "ab": 284 bytes of UTF-8, 255 stored (the
        # longest name); one character more does not fit.
        longest = "\u65e5" * 94 + "ab"
        c.ok(f"CREATE {quote(longest)}")
        self.assertEqual(self.names(c, "\u65e5*"), [longest])
        self.assertStatus(c.cmd(f"CREATE {quote(chr(0x65e5) * 95)}"), "NO", "CANNOT")
        self.assertStatus(c.cmd(f"CREATE {quote('&' * 128)}"), "NO", "CANNOT")
        c.ok(f"CREATE {quote('&' * 127)}")
        self.assertEqual(self.names(c, "&*"), ["&" * 127])
        r = c.cmd(b'CREATE "caf\xc3\xa9\xff"')
        self.assertEqual(r.status, "BAD", "a quoted string must be UTF-8 (the parser)")


# --- FETCH ----------------------------------------------------------------------------

def multipart_message():
    """A multipart/mixed message with a text part and a base64 PDF attachment,
    built with the email package: (bytes, attachment bytes)."""
    attachment = bytes(range(256)) * 12 + b"%%EOF\n"
    m = EmailMessage()
    m["From"] = "Alice Example <alice@remote.example>"
    m["To"] = "Bob <bob@example.test>"
    m["Subject"] = "report attached"
    m["Message-ID"] = "<report.1@remote.example>"
    m.set_content("Here is the report.\nSee the attachment.\n")
    m.add_attachment(attachment, maintype="application", subtype="pdf", filename="report.pdf")
    m.set_boundary("==BOUNDARY-42==")
    return m.as_bytes(policy=email.policy.SMTP), attachment


def mime_parts(raw, boundary):
    """The parts of a one-level multipart message: [(header, body)] as the
    IMAP section model cuts them (body without the CRLF before the boundary)."""
    delim = b"\r\n--" + boundary
    start = raw.index(delim) + len(delim)
    parts = []
    while True:
        start = raw.index(b"\r\n", start) + 2
        end = raw.index(delim, start)
        part = raw[start:end]
        hdr_end = part.index(b"\r\n\r\n") + 4
        parts.append((part[:hdr_end], part[hdr_end:]))
        if raw[end + len(delim):end + len(delim) + 2] == b"--":
            return parts
        start = end + len(delim)


class Fetch(ImapCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.name, cls.addr = cls.new_user("fetch")
        cls.plain = (b"From: Alice Example <alice@remote.example>\r\n"
                     b"To: Bob <bob@example.test>, carol@example.test\r\n"
                     b"Cc: \"Dave, D.\" <dave@example.test>\r\n"
                     b"Subject: quarterly numbers\r\n"
                     b"Date: Tue, 3 Mar 2026 10:00:00 +0100\r\n"
                     b"Message-ID: <numbers.7@remote.example>\r\n"
                     b"\r\n"
                     b"Line one.\r\nLine two.\r\n")
        cls.multi, cls.attachment = multipart_message()
        deliver(cls.mc, [cls.addr], cls.plain)
        deliver(cls.mc, [cls.addr], cls.multi)
        cls.raw = stored_messages(cls.mc, cls.name)     # as stored: trace + content

    def session(self):
        return self.connect(login=self.name, select="INBOX")

    def fetch1(self, c, seq, items):
        r = c.ok(f"FETCH {seq} {items}")
        found = [i for s, i in r.fetches() if s == seq]
        self.assertEqual(len(found), 1, r)
        return found[0]

    def test_fetch_flags_uid_internaldate_rfc822_size(self):
        c = self.session()
        it = self.fetch1(c, 1, "(FLAGS UID INTERNALDATE RFC822.SIZE)")
        self.assertEqual(int(it["UID"]), 1)
        self.assertEqual(int(it["RFC822.SIZE"]), len(self.raw[0]))
        date = datetime.datetime.strptime(it["INTERNALDATE"], "%d-%b-%Y %H:%M:%S %z")
        self.assertLess(abs(date.timestamp() - time.time()), 600)
        self.assertNotIn("\\Seen", flag_set(it["FLAGS"]))

    def test_rfc822_size_equals_length_of_body(self):
        c = self.session()
        for seq in (1, 2):
            it = self.fetch1(c, seq, "(RFC822.SIZE BODY.PEEK[])")
            self.assertEqual(int(it["RFC822.SIZE"]), len(it["BODY[]"]))
            self.assertEqual(it["BODY[]"], self.raw[seq - 1])

    def test_envelope_exact(self):
        c = self.session()
        r = c.ok("FETCH 1 (ENVELOPE)")
        self.assertEqual(r.lines(), [
            '1 FETCH (ENVELOPE ("Tue, 3 Mar 2026 10:00:00 +0100" "quarterly numbers" '
            '(("Alice Example" NIL "alice" "remote.example")) '
            '(("Alice Example" NIL "alice" "remote.example")) '
            '(("Alice Example" NIL "alice" "remote.example")) '
            '(("Bob" NIL "bob" "example.test")(NIL NIL "carol" "example.test")) '
            '(("Dave, D." NIL "dave" "example.test")) '
            'NIL NIL "<numbers.7@remote.example>"))'])

    def test_bodystructure_multipart_mixed_with_attachment(self):
        c = self.session()
        content = split_trace(self.raw[1])[1]
        (h1, b1), (h2, b2) = mime_parts(content, b"==BOUNDARY-42==")
        it = self.fetch1(c, 2, "(BODYSTRUCTURE)")
        expected = [
            ["text", "plain", ["charset", "utf-8"], None, None, "7bit",
             Atom(str(len(b1))), Atom(str(b1.count(b"\r\n"))), None, None, None, None],
            ["application", "pdf", None, None, None, "base64", Atom(str(len(b2))), None,
             ["attachment", ["filename", "report.pdf"]], None, None],
            "mixed", ["boundary", "==boundary-42=="], None, None, None]
        self.assertEqual(lower_strings(it["BODYSTRUCTURE"]), expected)
        it = self.fetch1(c, 2, "(BODY)")
        self.assertEqual(lower_strings(it["BODY"]), [
            ["text", "plain", ["charset", "utf-8"], None, None, "7bit",
             Atom(str(len(b1))), Atom(str(b1.count(b"\r\n")))],
            ["application", "pdf", None, None, None, "base64", Atom(str(len(b2)))],
            "mixed"])

    def test_body_header_and_text(self):
        c = self.session()
        it = self.fetch1(c, 1, "(BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
        raw = self.raw[0]
        cut = raw.index(b"\r\n\r\n") + 4
        self.assertEqual(it["BODY[HEADER]"], raw[:cut])
        self.assertEqual(it["BODY[TEXT]"], raw[cut:])
        self.assertEqual(it["BODY[TEXT]"], b"Line one.\r\nLine two.\r\n")

    def test_body_part_1_and_2_mime(self):
        c = self.session()
        content = split_trace(self.raw[1])[1]
        (h1, b1), (h2, b2) = mime_parts(content, b"==BOUNDARY-42==")
        it = self.fetch1(c, 2, "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[2])")
        self.assertEqual(it["BODY[1]"], b1)
        self.assertEqual(it["BODY[2.MIME]"], h2)
        self.assertEqual(it["BODY[2]"], b2)
        self.assertEqual(b1, b"Here is the report.\r\nSee the attachment.\r\n")

    def test_body_header_fields_subject_from(self):
        c = self.session()
        it = self.fetch1(c, 1, "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
        self.assertEqual(it["BODY[HEADER.FIELDS (SUBJECT FROM)]"],
                         b"From: Alice Example <alice@remote.example>\r\n"
                         b"Subject: quarterly numbers\r\n\r\n")
        it = self.fetch1(c, 1, "(BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED RETURN-PATH DATE TO CC "
                               "MESSAGE-ID)])")
        self.assertEqual(it["BODY[HEADER.FIELDS.NOT (RECEIVED RETURN-PATH DATE TO CC MESSAGE-ID)]"],
                         b"From: Alice Example <alice@remote.example>\r\n"
                         b"Subject: quarterly numbers\r\n\r\n")

    def test_body_1_of_single_part_message_is_its_text(self):
        c = self.session()
        it = self.fetch1(c, 1, "(BODY.PEEK[1] BODY.PEEK[TEXT])")
        self.assertEqual(it["BODY[1]"], it["BODY[TEXT]"])

    def test_folded_header_fields_kept_whole(self):
        name, addr = self.user()
        content = (b"From: a@remote.example\r\nSubject: a long subject\r\n that is folded\r\n"
                   b"\tover lines\r\nX-Other: 1\r\n\r\nbody\r\n")
        self.deliver(addr, content)
        c = self.connect(login=name, select="INBOX")
        it = self.fetch1(c, 1, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE)")
        self.assertEqual(it["BODY[HEADER.FIELDS (SUBJECT)]"],
                         b"Subject: a long subject\r\n that is folded\r\n\tover lines\r\n\r\n")
        self.assertEqual(re.sub(r"\s+", " ", strs(it["ENVELOPE"][1])),
                         "a long subject that is folded over lines")

    def test_envelope_of_minimal_message_nil_fields(self):
        name, addr = self.user()
        self.deliver(addr, b"Subject: bare\r\n\r\nbody\r\n")
        c = self.connect(login=name, select="INBOX")
        r = c.ok("FETCH 1 ENVELOPE")
        self.assertEqual(r.lines(), ['1 FETCH (ENVELOPE (NIL "bare" NIL NIL NIL NIL NIL NIL NIL NIL))'])

    def test_envelope_quotes_backslashes_8bit_and_groups(self):
        name, addr = self.user()
        self.deliver(addr, b'From: "Q \\"Quote\\" Person" <q@remote.example>\r\n'
                           b'To: undisclosed-recipients:;\r\n'
                           b'Subject: He said "hi" \\ bye \xc3\xa9t\xc3\xa9\r\n'
                           b'Reply-To: Team: x@remote.example, y@remote.example;\r\n'
                           b'\r\nbody\r\n')
        c = self.connect(login=name, select="INBOX")
        it = self.fetch1(c, 1, "ENVELOPE")
        env = strs(it["ENVELOPE"])
        subject = env[1]
        self.assertEqual(subject, 'He said "hi" \\ bye \u00e9t\u00e9')
        self.assertEqual(env[2], [['Q "Quote" Person', None, "q", "remote.example"]])
        # RFC 3501 7.4.2: a group is (NIL NIL name NIL) ... (NIL NIL NIL NIL)
        self.assertEqual(env[5], [[None, None, "undisclosed-recipients", None],
                                  [None, None, None, None]])
        self.assertEqual(env[4], [[None, None, "Team", None],
                                  [None, None, "x", "remote.example"],
                                  [None, None, "y", "remote.example"],
                                  [None, None, None, None]])
        raw = c.ok("FETCH 1 ENVELOPE").untagged[0]
        outside, pos = b"", 0
        while (m := re.compile(rb"\{(\d+)\}\r\n").search(raw, pos)):
            outside += raw[pos:m.start()]
            pos = m.end() + int(m.group(1))
        outside += raw[pos:]
        self.assertNotRegex(outside, rb"[\x80-\xff]", "8-bit text only in literals (IMAP4rev1)")

    def test_forwarded_message_rfc822_part(self):
        name, addr = self.user()
        inner = EmailMessage()
        inner["From"] = "Inner Sender <inner@remote.example>"
        inner["To"] = "x@example.test"
        inner["Subject"] = "the original"
        inner.set_content("Original text.\n")
        outer = EmailMessage()
        outer["From"] = "fwd@remote.example"
        outer["To"] = addr
        outer["Subject"] = "Fwd: the original"
        outer.set_content("See below.\n")
        outer.add_attachment(inner)
        outer.set_boundary("fwd-boundary")
        content = outer.as_bytes(policy=email.policy.SMTP)
        self.deliver(addr, content)
        (h1, b1), (h2, b2) = mime_parts(content, b"fwd-boundary")
        ihdr_end = b2.index(b"\r\n\r\n") + 4
        c = self.connect(login=name, select="INBOX")
        it = self.fetch1(c, 1, "(BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] "
                               "BODY.PEEK[2.1] BODYSTRUCTURE)")
        self.assertEqual(it["BODY[2]"], b2)
        self.assertEqual(it["BODY[2.HEADER]"], b2[:ihdr_end])
        self.assertEqual(it["BODY[2.TEXT]"], b2[ihdr_end:])
        self.assertEqual(it["BODY[2.1]"], b2[ihdr_end:])
        part2 = lower_strings(it["BODYSTRUCTURE"][1])
        self.assertEqual(part2[:2], ["message", "rfc822"])
        self.assertEqual(part2[6], Atom(str(len(b2))))
        self.assertEqual(part2[7][1], "the original", "the part's ENVELOPE")
        self.assertEqual(part2[8][:2], ["text", "plain"], "the part's BODYSTRUCTURE")
        self.assertEqual(part2[9], Atom(str(b2.count(b"\r\n"))), "the part's lines")

    def test_header_fields_as_thunderbird_asks_mixed_case_and_absent(self):
        c = self.session()
        it = self.fetch1(c, 1, "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc "
                               "Subject Date Message-ID Priority X-Priority References "
                               "Newsgroups In-Reply-To Content-Type Reply-To)])")
        value = [v for k, v in it.items() if k.startswith("BODY[HEADER.FIELDS")]
        self.assertEqual(len(value), 1, it)
        self.assertEqual(value[0],
                         b"From: Alice Example <alice@remote.example>\r\n"
                         b"To: Bob <bob@example.test>, carol@example.test\r\n"
                         b"Cc: \"Dave, D.\" <dave@example.test>\r\n"
                         b"Subject: quarterly numbers\r\n"
                         b"Date: Tue, 3 Mar 2026 10:00:00 +0100\r\n"
                         b"Message-ID: <numbers.7@remote.example>\r\n\r\n")

    def test_k9_style_part_fetches(self):
        c = self.session()
        content = split_trace(self.raw[1])[1]
        (h1, b1), (h2, b2) = mime_parts(content, b"==BOUNDARY-42==")
        it = self.fetch1(c, 2, "(UID BODY.PEEK[1.MIME] BODY.PEEK[1]<0.10> BODY.PEEK[2]<4.8>)")
        self.assertEqual(it["BODY[1.MIME]"], h1)
        self.assertEqual(it["BODY[1]<0>"], b1[:10])
        self.assertEqual(it["BODY[2]<4>"], b2[4:12])
        self.assertEqual(c.ok("UID SEARCH 1:* NOT DELETED").lines(), ["SEARCH 1 2"])

    def test_partial_body(self):
        c = self.session()
        it = self.fetch1(c, 1, "(BODY.PEEK[]<0.10>)")
        self.assertEqual(it["BODY[]<0>"], self.raw[0][:10])
        it = self.fetch1(c, 1, "(BODY.PEEK[TEXT]<5.7>)")
        self.assertEqual(it["BODY[TEXT]<5>"], b"one.\r\nL")
        it = self.fetch1(c, 1, "(BODY.PEEK[]<100000.10>)")
        self.assertEqual(it["BODY[]<100000>"], b"")

    def test_body_peek_keeps_unseen_body_sets_seen(self):
        name, addr = self.user()
        content = message("seen me")
        self.deliver(addr, content)
        c = self.connect(login=name, select="INBOX")
        it = self.fetch1(c, 1, "(BODY.PEEK[])")
        self.assertNotIn("FLAGS", it)
        self.assertNotIn("\\Seen", flag_set(self.fetch1(c, 1, "FLAGS")["FLAGS"]))
        it = self.fetch1(c, 1, "(BODY[])")
        self.assertEqual(split_trace(it["BODY[]"])[1], content)
        self.assertIn("\\Seen", flag_set(it["FLAGS"]), "the FETCH that set \\Seen says so")
        c2 = self.connect(login=name, select="INBOX")
        self.assertIn("\\Seen", flag_set(self.fetch1(c2, 1, "FLAGS")["FLAGS"]))

    def test_rfc822_sets_seen_rfc822_header_does_not(self):
        name, addr = self.user()
        content = message("rfc822")
        self.deliver(addr, content)
        c = self.connect(login=name, select="INBOX")
        it = self.fetch1(c, 1, "(RFC822.HEADER)")
        self.assertEqual(it["RFC822.HEADER"], self.stored(name)[0][:self.stored(name)[0].index(
            b"\r\n\r\n") + 4])
        self.assertNotIn("\\Seen", flag_set(self.fetch1(c, 1, "FLAGS")["FLAGS"]))
        it = self.fetch1(c, 1, "(RFC822)")
        self.assertEqual(split_trace(it["RFC822"])[1], content)
        self.assertIn("\\Seen", flag_set(self.fetch1(c, 1, "FLAGS")["FLAGS"]))

    def test_binary_of_base64_part_is_the_decoded_attachment(self):
        c = self.session()
        it = self.fetch1(c, 2, "(BINARY.PEEK[2] BINARY.SIZE[2])")
        self.assertEqual(it["BINARY[2]"], self.attachment)
        self.assertEqual(int(it["BINARY.SIZE[2]"]), len(self.attachment))
        # The decoded bytes hold NUL: sent as a literal8 (RFC 3516 4.2).
        r = c.ok("FETCH 2 (BINARY.PEEK[2])")
        self.assertIn(b"BINARY[2] ~{%d}" % len(self.attachment), r.untagged[0])
        r = c.ok("FETCH 2 (BINARY.PEEK[1])")
        self.assertIn(b"BINARY[1] {", r.untagged[0], "text without NUL: a plain literal")

    def test_append_literal8_stores_8bit_and_refuses_nul(self):
        name, _ = self.user()
        c = self.connect(login=name)
        self.assertIn("BINARY", c.ok("CAPABILITY").lines()[0].split())
        raw = ("Subject: 8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
               "Gr\u00fc\u00dfe \u00e0 tous\r\n").encode()
        r = c.ok(f"APPEND INBOX ~{{{len(raw)}+}}\r\n".encode() + raw)
        self.assertIn("APPENDUID", r.code)
        c.send(f"s1 APPEND INBOX (\\Seen) ~{{{len(raw)}}}\r\n")
        self.assertTrue(c.response().startswith(b"+"), "synchronizing literal8 gets +")
        c.send(raw + b"\r\n")
        self.assertEqual(c.read_until_tagged("s1").status, "OK")
        c.select()
        for seq in (1, 2):
            self.assertEqual(self.fetch1(c, seq, "BODY.PEEK[]")["BODY[]"], raw)
        nul = raw.replace(b"tous", b"t\x00us")
        r = c.cmd(f"APPEND INBOX ~{{{len(nul)}+}}\r\n".encode() + nul)
        self.assertEqual((r.status, r.code), ("NO", "UNKNOWN-CTE"))
        r = c.cmd(f"APPEND INBOX {{{len(nul)}+}}\r\n".encode() + nul)
        self.assertEqual(r.status, "BAD")
        self.assertStatus(c.cmd(b"LOGIN ~{4+}\r\nfred pw"), "BAD")
        self.assertEqual(c.ok("SEARCH ALL").lines(), ["SEARCH 1 2"])

    def test_fetch_macros_all_fast_full(self):
        c = self.session()
        it = self.fetch1(c, 1, "ALL")
        self.assertEqual(set(it), {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"})
        it = self.fetch1(c, 1, "FAST")
        self.assertEqual(set(it), {"FLAGS", "INTERNALDATE", "RFC822.SIZE"})
        it = self.fetch1(c, 1, "FULL")
        self.assertEqual(set(it), {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"})

    def test_uid_fetch_carries_uid_and_uses_uids(self):
        c = self.session()
        r = c.ok("UID FETCH 2 (FLAGS)")
        (seq, it), = r.fetches()
        self.assertEqual((seq, int(it["UID"])), (2, 2))
        self.assertEqual(c.ok("UID FETCH 99 (FLAGS)").fetches(), [])
        self.assertEqual([int(i["UID"]) for _, i in c.ok("UID FETCH 2:* (FLAGS)").fetches()], [2])

    def test_uid_fetch_range_beyond_last_uid_returns_last(self):
        # RFC 3501 6.4.8: "n:*" with n > the largest UID is "largest:n",
        # which clients use to poll for new mail.
        c = self.session()
        self.assertEqual([int(i["UID"]) for _, i in c.ok("UID FETCH 10:* (FLAGS)").fetches()], [2])
        self.assertEqual(c.ok("UID SEARCH UID 10:*").lines(), ["SEARCH 2"])

    def test_odd_fetch_attributes_answered_without_crash(self):
        c = self.session()
        for att in ("BODY[0]", "BODY[1.0]", "BODY[2.1.1.1.1.1]", "BINARY[]", "BINARY.SIZE[]",
                    "BODY[]<0.0>", "BODY[]<4294967295.4294967295>", 'BODY[HEADER.FIELDS ("")]',
                    "BODY[HEADER.FIELDS ()]", "BODY[TEXT]<0>", "BODY[3]", "BINARY[3]",
                    "BODY[2.MIME]<1.2>", "BODY[MIME]", "RFC822.TEXT", "BODY[1.HEADER]",
                    "(" + " ".join(["FLAGS"] * 2000) + ")", "BODY[99999999999]",
                    "BINARY.PEEK[1]<0.5>", "BODY.PEEK[2.TEXT]"):
            r = c.cmd(f"FETCH 1:2 {att}")
            self.assertIn(r.status, ("OK", "BAD", "NO"), f"{att}: {r}")
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_fetch_bad_attribute_bad(self):
        c = self.session()
        self.assertStatus(c.cmd("FETCH 1 (BOGUS)"), "BAD")
        self.assertStatus(c.cmd("FETCH 1 BODY[4.2.X]"), "BAD")
        self.assertStatus(c.cmd("FETCH 0 FLAGS"), "BAD")
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_5mb_message_fetched_whole_is_exactly_what_was_delivered(self):
        name, addr = self.user()
        line = b"".join(b"%07d 0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
                        % i for i in range(5 * 1024 * 1024 // 72))
        content = message("five megabytes", line)
        self.assertGreater(len(content), 5 * 1000 * 1000)
        self.deliver(addr, content)
        c = self.connect(login=name, select="INBOX")
        it = self.fetch1(c, 1, "(RFC822.SIZE BODY.PEEK[])")
        trace, rest = split_trace(it["BODY[]"])
        self.assertTrue(rest == content, f"5 MB body differs (got {len(rest)} bytes, "
                                         f"want {len(content)})")
        self.assertEqual(int(it["RFC822.SIZE"]), len(it["BODY[]"]))
        it = self.fetch1(c, 1, "(BODY.PEEK[TEXT]<3000000.100>)")
        self.assertEqual(it["BODY[TEXT]<3000000>"], line[3000000:3000100])


class Bulk(ImapCase):
    """A mailbox of 1,000 messages (delivered by smtpd), for FETCH 1:* and mbsync."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.name, cls.addr = cls.new_user("bulk")
        cls.sync_name, cls.sync_addr = cls.new_user("sync")
        cls.contents = [message(f"bulk {i:04d}", b"message number %d\r\n" % i)
                        for i in range(BULK)]
        deliver_many(cls.mc, [cls.addr, cls.sync_addr], cls.contents)

    def test_fetch_1_star_on_1000_messages(self):
        c = self.connect(login=self.name)
        self.assertIn(f"{BULK} EXISTS", c.select().lines())
        t0 = time.monotonic()
        r = c.ok("FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        elapsed = time.monotonic() - t0
        f = r.fetches()
        self.assertEqual([s for s, _ in f], list(range(1, BULK + 1)))
        self.assertEqual([int(i["UID"]) for _, i in f], list(range(1, BULK + 1)))
        subjects = sorted(i["BODY[HEADER.FIELDS (SUBJECT)]"] for _, i in f)
        self.assertEqual(subjects, [b"Subject: bulk %04d\r\n\r\n" % i for i in range(BULK)])
        self.assertLess(elapsed, 30)
        r = c.ok("FETCH 1:* BODY.PEEK[]")
        got = sorted(split_trace(i["BODY[]"])[1] for _, i in r.fetches())
        self.assertEqual(got, sorted(self.contents))

    def test_pipelined_fetch_of_every_body_then_noop_in_order_slow_reader(self):
        c = self.connect(login=self.name, select="INBOX")
        c.send("f1 FETCH 1:* BODY.PEEK[]\r\nn1 NOOP\r\n")
        time.sleep(2)                   # the client does not read for a while
        r = c.read_until_tagged("f1")
        self.assertStatus(r, "OK")
        got = sorted(split_trace(i["BODY[]"])[1] for _, i in r.fetches())
        self.assertEqual(got, sorted(self.contents))
        self.assertStatus(c.read_until_tagged("n1"), "OK")

    def test_fetch_20000_ranges_bad_or_each_message_once(self):
        c = self.connect(login=self.name, select="INBOX")
        ranges = ",".join(str(1 + i % 9) for i in range(20000))
        r = c.cmd(f"FETCH {ranges} (UID)")
        self.assertIn(r.status, ("OK", "BAD"), r)
        if r.status == "OK":
            self.assertEqual(sorted(s for s, _ in r.fetches()), list(range(1, 10)))
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_mbsync_over_starttls(self):
        if shutil.which("mbsync") is None:
            self.skipTest("mbsync (isync) is not installed: apt-get install isync")
        name, addr = self.new_user("tls")
        contents = [message(f"tls sync {i}") for i in range(5)]
        for m in contents:
            self.deliver(addr, m)
        tmp = tempfile.mkdtemp(prefix="imapd-mbsync-tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.mkdir(os.path.join(tmp, "mail"))
        conf = os.path.join(tmp, "mbsyncrc")
        with open(conf, "w") as f:
            f.write(f"""IMAPAccount tls
Host localhost
Port {self.port}
User {name}
Pass {PASSWORD}
SSLType STARTTLS
CertificateFile {self.mc.cert}
Timeout 30

IMAPStore remote
Account tls

MaildirStore local
Path {tmp}/mail/
Inbox {tmp}/mail/INBOX

Channel ch
Far :remote:
Near :local:
Patterns INBOX
Create Near
SyncState *
Sync Pull
""")
        r = subprocess.run(["mbsync", "-c", conf, "-a"], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, HOME=tmp))
        self.assertEqual(r.returncode, 0, f"mbsync over STARTTLS failed:\n{r.stdout}\n{r.stderr}")
        got = []
        for sub in ("new", "cur"):
            d = os.path.join(tmp, "mail", "INBOX", sub)
            for fn in os.listdir(d):
                with open(os.path.join(d, fn), "rb") as fh:
                    data = fh.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                    # mbsync marks the messages it copies with an X-TUID: header
                    got.append(re.sub(rb"(?m)^X-TUID: .*\r\n", b"", split_trace(data)[1]))
        self.assertEqual(sorted(got), sorted(contents))

    def test_search_all_and_esearch_count_on_1000(self):
        c = self.connect(login=self.name, select="INBOX")
        r = c.ok("SEARCH RETURN (COUNT MIN MAX) ALL")
        self.assertEqual(r.lines(), [f'ESEARCH (TAG "{r.tag}") MIN 1 MAX {BULK} COUNT {BULK}'])

    def test_mbsync_sync_change_flags_move_delete_sync_again(self):
        if shutil.which("mbsync") is None:
            self.skipTest("mbsync (isync) is not installed: apt-get install isync")
        tmp = tempfile.mkdtemp(prefix="imapd-mbsync-")
        self.addCleanup(shutil.rmtree, tmp, True)
        maildir = os.path.join(tmp, "mail")
        os.mkdir(maildir)
        c = self.connect(login=self.sync_name)
        c.ok("CREATE Archive")
        conf = os.path.join(tmp, "mbsyncrc")
        with open(conf, "w") as f:
            f.write(f"""IMAPAccount test
Host 127.0.0.1
Port {self.port}
User {self.sync_name}
Pass {PASSWORD}
AuthMechs LOGIN
SSLType None
Timeout 60
PipelineDepth 50

IMAPStore remote
Account test

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel ch
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
Sync All
""")

        def mbsync():
            r = subprocess.run(["mbsync", "-c", conf, "-a"], capture_output=True, text=True,
                               timeout=180, env=dict(os.environ, HOME=tmp))
            self.assertEqual(r.returncode, 0, f"mbsync failed:\n{r.stdout}\n{r.stderr}")
            return r

        def files(box):
            out = {}
            for sub in ("new", "cur"):
                d = os.path.join(maildir, box, sub)
                for fn in os.listdir(d) if os.path.isdir(d) else ():
                    out[os.path.join(d, fn)] = fn
            return out

        def server_state(box):
            s = self.connect(login=self.sync_name)
            s.ok(f"EXAMINE {box}")
            res = s.ok("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])").fetches()
            s.ok("LOGOUT")
            return {int(i["UID"]): (flag_set(i["FLAGS"]) - {"\\Recent"},
                                    i["BODY[HEADER.FIELDS (SUBJECT)]"]) for _, i in res}

        def local_state(box):
            out = {}
            for path, fn in files(box).items():
                m = re.search(r",U=(\d+)", fn)
                self.assertIsNotNone(m, f"no UID in Maildir file name {fn}")
                flags = {IMAP_OF_MAILDIR[ch] for ch in maildir_flags(fn) if ch in IMAP_OF_MAILDIR}
                with open(path, "rb") as fh:
                    data = fh.read()
                subj = re.search(rb"(?mi)^Subject: (.*)\r?\n", data).group(1)
                out[int(m.group(1))] = (flags, b"Subject: " + subj + b"\r\n\r\n")
            return out

        mbsync()
        inbox = files("INBOX")
        self.assertEqual(len(inbox), BULK, "every message of the INBOX is in the Maildir")
        self.assertEqual(local_state("INBOX"), server_state("INBOX"))

        # Local changes, as a Maildir client makes them (renames per the spec).
        paths = sorted(inbox, key=lambda p: int(re.search(r",U=(\d+)", p).group(1)))
        seen, flagged, moved, deleted = paths[0:100], paths[100:150], paths[150:170], paths[170:180]

        def set_flags(path, add):
            d, fn = os.path.split(path)
            base, _, info = fn.partition(":2,")
            new = base + ":2," + "".join(sorted(set(info) | set(add)))
            os.rename(path, os.path.join(os.path.dirname(d), "cur", new))

        for p in seen:
            set_flags(p, "S")
        for p in flagged:
            set_flags(p, "FS")
        os.makedirs(os.path.join(maildir, "Archive", "cur"), exist_ok=True)
        for p in moved:
            fn = os.path.basename(p)
            fn = re.sub(r",U=\d+", "", fn)
            os.rename(p, os.path.join(maildir, "Archive", "cur", fn))
        for p in deleted:
            os.unlink(p)
        mbsync()

        server_inbox = server_state("INBOX")
        self.assertEqual(len(server_inbox), BULK - len(moved) - len(deleted),
                         "moved and deleted messages are gone from the server's INBOX")
        self.assertEqual(local_state("INBOX"), server_inbox)
        nseen = sum(1 for f, _ in server_inbox.values() if "\\Seen" in f)
        nflag = sum(1 for f, _ in server_inbox.values() if "\\Flagged" in f)
        self.assertEqual((nseen, nflag), (len(seen) + len(flagged), len(flagged)))
        server_archive = server_state("Archive")
        self.assertEqual(len(server_archive), len(moved))
        self.assertEqual(local_state("Archive"), server_archive)

        # A third run changes nothing.
        mbsync()
        self.assertEqual(server_state("INBOX"), server_inbox)
        self.assertEqual(len(files("INBOX")), len(server_inbox))


# --- STORE, EXPUNGE, COPY, MOVE, APPEND, CLOSE -------------------------------------------

class Messages(ImapCase):
    def mailbox(self, n, prefix="m"):
        """A user with n messages in INBOX; a session with it selected."""
        name, addr = self.user(prefix)
        contents = [message(f"{prefix} {i + 1}") for i in range(n)]
        for m in contents:
            self.deliver(addr, m)
        c = self.connect(login=name, select="INBOX")
        return name, c, contents

    def flags(self, c, seqs="1:*"):
        return {s: flag_set(i["FLAGS"]) - {"\\Recent"}
                for s, i in c.ok(f"FETCH {seqs} (FLAGS)").fetches()}

    def test_store_add_remove_replace_flags(self):
        name, c, _ = self.mailbox(3)
        r = c.ok("STORE 1:2 +FLAGS (\\Flagged \\Seen)")
        got = {s: flag_set(i["FLAGS"]) - {"\\Recent"} for s, i in r.fetches()}
        self.assertEqual(got, {1: {"\\Flagged", "\\Seen"}, 2: {"\\Flagged", "\\Seen"}})
        r = c.ok("STORE 2 -FLAGS (\\Seen)")
        self.assertEqual({s: flag_set(i["FLAGS"]) - {"\\Recent"} for s, i in r.fetches()},
                         {2: {"\\Flagged"}})
        r = c.ok("STORE 3 FLAGS (\\Answered \\Draft)")
        self.assertEqual({s: flag_set(i["FLAGS"]) - {"\\Recent"} for s, i in r.fetches()},
                         {3: {"\\Answered", "\\Draft"}})
        r = c.ok("UID STORE 3 FLAGS ()")
        (s, it), = r.fetches()
        self.assertEqual((s, int(it["UID"]), flag_set(it["FLAGS"]) - {"\\Recent"}), (3, 3, set()))
        c2 = self.connect(login=name, select="INBOX")
        self.assertEqual(self.flags(c2), {1: {"\\Flagged", "\\Seen"}, 2: {"\\Flagged"}, 3: set()})

    def test_store_silent_sends_no_fetch(self):
        _, c, _ = self.mailbox(2)
        r = c.ok("STORE 1:2 +FLAGS.SILENT (\\Seen)")
        self.assertEqual(r.fetches(), [], "FLAGS.SILENT: no untagged FETCH for our own change")
        self.assertEqual(self.flags(c), {1: {"\\Seen"}, 2: {"\\Seen"}})

    def test_store_flags_without_parentheses(self):
        # RFC 3501 store-att-flags: a flag-list or flags separated by spaces.
        _, c, _ = self.mailbox(2)
        r = c.ok("STORE 1 +FLAGS \\Seen \\Flagged $Later")
        self.assertEqual({s: flag_set(i["FLAGS"]) - {"\\Recent"} for s, i in r.fetches()},
                         {1: {"\\Seen", "\\Flagged", "$Later"}})
        c.ok("STORE 2 FLAGS.SILENT \\Answered")
        self.assertEqual(self.flags(c), {1: {"\\Seen", "\\Flagged", "$Later"},
                                         2: {"\\Answered"}})
        self.assertStatus(c.cmd("STORE 1 +FLAGS (\\Seen) \\Draft"), "BAD")

    def test_store_recent_cannot_be_set(self):
        _, c, _ = self.mailbox(1)
        self.assertIn(c.cmd("STORE 1 +FLAGS (\\Recent)").status, ("BAD", "NO"))

    def test_keywords_persist_across_sessions(self):
        name, c, _ = self.mailbox(2)
        r = c.ok("STORE 1 +FLAGS ($Label1)")
        self.assertTrue(r.matching(r"^FLAGS \(.*\$Label1"), f"new keyword announced in FLAGS: {r}")
        self.assertEqual(self.flags(c), {1: {"$Label1"}, 2: set()})
        c.ok("STORE 2 +FLAGS ($Label1 Work)")
        c.close()
        c2 = self.connect(login=name)
        r = c2.select()
        flags_line = r.matching(r"^FLAGS ")[0]
        self.assertIn("$Label1", flags_line)
        self.assertIn("Work", flags_line)
        self.assertIn("$Label1", r.matching(r"PERMANENTFLAGS")[0])
        self.assertEqual(self.flags(c2), {1: {"$Label1"}, 2: {"$Label1", "Work"}})
        c2.ok("STORE 1:2 -FLAGS ($Label1)")
        self.assertEqual(self.flags(c2), {1: set(), 2: {"Work"}})
        self.assertEqual(c2.ok("SEARCH KEYWORD Work").lines(), ["SEARCH 2"])

    def test_expunge_sends_expunge_in_order(self):
        name, c, contents = self.mailbox(5)
        c.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        r = c.ok("EXPUNGE")
        self.assertEqual(apply_expunges([1, 2, 3, 4, 5], r), [1, 3, 5])
        subjects = [i["BODY[HEADER.FIELDS (SUBJECT)]"]
                    for _, i in c.ok("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]").fetches()]
        self.assertEqual(subjects, [b"Subject: m %d\r\n\r\n" % i for i in (1, 3, 5)])
        self.assertEqual(len(stored_list(self.mc, name)), 3)

    def test_uid_expunge_only_the_named_uids(self):
        name, c, _ = self.mailbox(4)
        c.ok("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
        r = c.ok("UID EXPUNGE 2:3")
        self.assertEqual(apply_expunges([1, 2, 3, 4], r), [1, 4])
        uids = [int(i["UID"]) for _, i in c.ok("FETCH 1:* UID").fetches()]
        self.assertEqual(uids, [1, 4])

    def test_copy_copyuid(self):
        name, c, contents = self.mailbox(3)
        c.ok("CREATE Dest")
        uv = status_of(c.ok("STATUS Dest (UIDVALIDITY)"), "Dest")["UIDVALIDITY"]
        c.ok("STORE 2 +FLAGS.SILENT (\\Flagged $Work)")
        r = c.ok("COPY 2:3 Dest")
        m = re.match(r"\[COPYUID (\d+) (\S+) (\S+)\]", r.text)
        self.assertIsNotNone(m, r)
        self.assertEqual(int(m.group(1)), uv)
        self.assertEqual((seqset_numbers(m.group(2)), seqset_numbers(m.group(3))),
                         ([2, 3], [1, 2]))
        self.assertEqual(len(self.flags(c)), 3, "COPY leaves the source alone")
        c.ok("SELECT Dest")
        got = {s: (flag_set(i["FLAGS"]) - {"\\Recent"}, split_trace(i["BODY[]"])[1])
               for s, i in c.ok("FETCH 1:* (FLAGS BODY.PEEK[])").fetches()}
        self.assertEqual(got, {1: ({"\\Flagged", "$Work"}, contents[1]), 2: (set(), contents[2])})

    def test_copy_and_move_keep_internaldate(self):
        name, _ = self.user()
        c = self.connect(login=name)
        m = message("old mail")
        c.ok(f'APPEND INBOX (\\Answered) "05-May-2019 08:00:00 +0000" {{{len(m)}+}}\r\n'.encode()
             + m)
        c.ok(f'APPEND INBOX "06-May-2019 08:00:00 +0000" {{{len(m)}+}}\r\n'.encode() + m)
        c.ok("CREATE Archive")
        c.select()
        c.ok("COPY 1 Archive")
        c.ok("MOVE 2 Archive")
        c.ok("SELECT Archive")
        got = {s: (imap_time(i["INTERNALDATE"]), flag_set(i["FLAGS"]) - {"\\Recent"})
               for s, i in c.ok("FETCH 1:* (INTERNALDATE FLAGS)").fetches()}
        self.assertEqual(got, {1: (imap_time("05-May-2019 08:00:00 +0000"), {"\\Answered"}),
                               2: (imap_time("06-May-2019 08:00:00 +0000"), set())})

    def test_copy_to_missing_mailbox_trycreate(self):
        _, c, _ = self.mailbox(1)
        self.assertStatus(c.cmd("COPY 1 Missing"), "NO", "TRYCREATE")

    def test_move_copyuid_and_expunge(self):
        name, c, contents = self.mailbox(4)
        r = c.ok("MOVE 2:3 Trash")
        copyuid = r.matching(r"^OK \[COPYUID ") + ([r.text] if "COPYUID" in r.text else [])
        self.assertEqual(len(copyuid), 1, r)
        m = re.search(r"COPYUID (\d+) (\S+) (\S+)\]", copyuid[0])
        self.assertEqual((seqset_numbers(m.group(2)), seqset_numbers(m.group(3))),
                         ([2, 3], [1, 2]))
        self.assertEqual(len(r.matching(r"^\d+ EXPUNGE$")), 2, r)
        self.assertEqual([int(i["UID"]) for _, i in c.ok("FETCH 1:* UID").fetches()], [1, 4])
        c.ok("SELECT Trash")
        got = [split_trace(i["BODY[]"])[1] for _, i in c.ok("FETCH 1:* BODY.PEEK[]").fetches()]
        self.assertEqual(got, contents[1:3])

    def test_uid_move(self):
        name, c, contents = self.mailbox(3)
        r = c.ok("UID MOVE 3 Junk")
        self.assertEqual(r.matching(r"^\d+ EXPUNGE$"), ["3 EXPUNGE"])
        self.assertEqual(status_of(c.ok("STATUS Junk (MESSAGES)"), "Junk"), {"MESSAGES": 1})

    def test_append_flags_date_appenduid_exact_bytes(self):
        name, _ = self.user()
        c = self.connect(login=name)
        uv = status_of(c.ok("STATUS Drafts (UIDVALIDITY)"), "Drafts")["UIDVALIDITY"]
        content = (b"From: me@example.test\r\nSubject: draft\r\n\r\n"
                   b"Exact bytes:\r\n \ttrailing \r\n\xc3\xa9\r\n.\r\n..dot\r\nno final newline")
        c.send(f'a1 APPEND Drafts (\\Draft \\Seen $Todo) "14-Feb-2024 09:30:00 +0200" '
               f'{{{len(content)}}}\r\n')
        self.assertTrue(c.response().startswith(b"+"))
        c.send(content + b"\r\n")
        r = c.read_until_tagged("a1")
        self.assertStatus(r, "OK", "APPENDUID")
        self.assertEqual(r.code, f"APPENDUID {uv} 1")
        c.ok("SELECT Drafts")
        it = dict(c.ok("UID FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])").fetches())[1]
        self.assertEqual(it["BODY[]"], content)
        self.assertEqual(int(it["RFC822.SIZE"]), len(content))
        self.assertEqual(flag_set(it["FLAGS"]) - {"\\Recent"}, {"\\Draft", "\\Seen", "$Todo"})
        date = datetime.datetime.strptime(it["INTERNALDATE"], "%d-%b-%Y %H:%M:%S %z")
        self.assertEqual(date.timestamp(), datetime.datetime(
            2024, 2, 14, 7, 30, tzinfo=datetime.timezone.utc).timestamp())

    def test_append_literal_plus_and_second_appenduid(self):
        name, _ = self.user()
        c = self.connect(login=name)
        m1, m2 = message("a1"), message("a2")
        r1 = c.ok(f"APPEND INBOX {{{len(m1)}+}}\r\n".encode() + m1)
        r2 = c.ok(f"APPEND INBOX () {{{len(m2)}+}}\r\n".encode() + m2)
        self.assertEqual((r1.code.split()[2], r2.code.split()[2]), ("1", "2"))
        self.assertEqual(self.stored(name), [m1, m2])

    def test_append_2mb_synchronizing_literal_exact_bytes(self):
        name, _ = self.user()
        c = self.connect(login=name)
        content = message("big append", os.urandom(1 << 20).hex().encode()[:2 << 20] + b"\r\n")
        c.send(f"a1 APPEND INBOX {{{len(content)}}}\r\n")
        self.assertTrue(c.response().startswith(b"+"))
        for i in range(0, len(content), 65536):
            c.send(content[i:i + 65536])
        c.send(b"\r\n")
        self.assertStatus(c.read_until_tagged("a1"), "OK", "APPENDUID")
        c.select()
        (_, it), = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[])").fetches()
        self.assertTrue(it["BODY[]"] == content, "2 MB APPEND read back differs")
        self.assertEqual(int(it["RFC822.SIZE"]), len(content))

    def test_keywords_beyond_the_table_refused_cleanly(self):
        name, c, _ = self.mailbox(1)
        statuses = []
        for i in range(70):
            r = c.cmd(f"STORE 1 +FLAGS (kw{i})")
            statuses.append(r.status)
            self.assertIn(r.status, ("OK", "NO"), r)
        self.assertEqual(statuses[0], "OK")
        r = c.select()
        perm = r.matching(r"PERMANENTFLAGS")[0]
        if "NO" in statuses:
            self.assertNotIn("\\*", perm, "no \\* once no new keyword can be stored")
        (_, it), = c.ok("FETCH 1 FLAGS").fetches()
        self.assertEqual(len(flag_set(it["FLAGS"]) - {"\\Recent"}), statuses.count("OK"))
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_append_to_selected_mailbox_announces_exists(self):
        name, c, _ = self.mailbox(1)
        m = message("appended")
        r = c.ok(f"APPEND INBOX {{{len(m)}+}}\r\n".encode() + m)
        self.assertIn("2 EXISTS", r.lines())

    def test_append_to_missing_mailbox_trycreate(self):
        name, _ = self.user()
        c = self.connect(login=name)
        m = message("nowhere")
        # Synchronizing: refused before the literal (no "+").
        c.send(f"a1 APPEND Missing {{{len(m)}}}\r\n")
        r = c.read_until_tagged("a1")
        self.assertStatus(r, "NO", "TRYCREATE")
        r = c.cmd(f"APPEND Missing {{{len(m)}+}}\r\n".encode() + m)
        self.assertStatus(r, "NO", "TRYCREATE")
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_append_too_large_refused_before_the_literal(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.send("a1 APPEND INBOX {4294967296}\r\n")
        r = c.read_until_tagged("a1")
        self.assertStatus(r, "NO")
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_close_expunges_silently(self):
        name, c, _ = self.mailbox(3)
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        r = c.ok("CLOSE")
        self.assertEqual(r.matching("EXPUNGE"), [])
        self.assertStatus(c.cmd("FETCH 1 FLAGS"), "BAD")      # nothing selected now
        self.assertEqual(len(stored_list(self.mc, name)), 2)

    def test_unselect_does_not_expunge(self):
        name, c, _ = self.mailbox(3)
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        r = c.ok("UNSELECT")
        self.assertEqual(r.matching("EXPUNGE"), [])
        self.assertEqual(len(stored_list(self.mc, name)), 3)
        self.assertStatus(c.cmd("FETCH 1 FLAGS"), "BAD")

    def test_close_expunges_messages_deleted_by_another_session(self):
        name, c, _ = self.mailbox(3)
        other = self.connect(login=name, select="INBOX")
        other.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.ok("CLOSE")
        self.assertEqual([m["uid"] for m in stored_list(self.mc, name)], [1, 3],
                         "CLOSE removes every \\Deleted message, whoever set the flag")

    def test_uid_expunge_leaves_undeleted_messages(self):
        name, c, _ = self.mailbox(3)
        c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        r = c.ok("UID EXPUNGE 1:*")
        self.assertEqual(apply_expunges([1, 2, 3], r), [1, 3])

    def test_append_empty_message(self):
        name, _ = self.user()
        c = self.connect(login=name)
        r = c.cmd("APPEND INBOX {0+}\r\n")
        self.assertIn(r.status, ("OK", "NO"), r)
        if r.status == "OK":
            c.select()
            (_, it), = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[] BODYSTRUCTURE ENVELOPE "
                            "BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1])").fetches()
            self.assertEqual(it["BODY[]"] if it["BODY[]"] is not None else b"", b"")
            self.assertEqual(int(it["RFC822.SIZE"]), 0)

    def test_close_in_examine_does_not_expunge(self):
        name, c, _ = self.mailbox(2)
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXAMINE INBOX")
        c.ok("CLOSE")
        self.assertEqual(len(stored_list(self.mc, name)), 2)

    def test_expunged_message_gone_from_the_store(self):
        name, c, contents = self.mailbox(2)
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        self.assertEqual([split_trace(m)[1] for m in self.stored(name)], [contents[1]])


# --- SEARCH -------------------------------------------------------------------------------

class SearchCase(ImapCase):
    """Four messages to search (flagged: 1 and 4; seen: 1 and 3)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.name, _ = cls.new_user("search")
        msgs = [
            ("alpha report", "alice@a.example", b"the quick brown fox\r\n", "01-Jan-2020",
             "(\\Flagged \\Seen)"),
            ("beta", "bob@b.example", b"lazy dog\r\n" + b"padding line\r\n" * 400, "15-Jun-2021",
             "()"),
            ("gamma alpha", "carol@c.example", b"nothing to see\r\n", "10-Mar-2022", "(\\Seen)"),
            ("delta", "bob@b.example", b"FOX again\r\n", "01-Jan-2023", "(\\Flagged)"),
        ]
        c = Imap(cls.port)
        try:
            c.login(cls.name)
            for subj, frm, body, date, flags in msgs:
                m = message(subj, body, sender=frm)
                c.ok(f'APPEND INBOX {flags} "{date} 12:00:00 +0000" {{{len(m)}+}}\r\n'.encode()
                     + m)
        finally:
            c.close()

    def setUp(self):
        super().setUp()
        self.c = self.connect(login=self.name)
        self.c.ok("EXAMINE INBOX")

    def search(self, criteria, uid=False):
        r = self.c.ok(("UID " if uid else "") + "SEARCH " + criteria)
        lines = r.matching(r"^SEARCH( |$)")
        self.assertEqual(len(lines), 1, r)
        return sorted(int(x) for x in lines[0].split()[1:])


class Search(SearchCase):
    def test_search_all(self):
        self.assertEqual(self.search("ALL"), [1, 2, 3, 4])

    def test_search_flagged_unseen_seen(self):
        self.assertEqual(self.search("FLAGGED"), [1, 4])
        self.assertEqual(self.search("UNSEEN"), [2, 4])
        self.assertEqual(self.search("SEEN"), [1, 3])
        self.assertEqual(self.search("UNFLAGGED SEEN"), [3])

    def test_search_subject_from_case_insensitive(self):
        self.assertEqual(self.search("SUBJECT alpha"), [1, 3])
        self.assertEqual(self.search("SUBJECT ALPHA"), [1, 3])
        self.assertEqual(self.search('FROM "bob@b.example"'), [2, 4])
        self.assertEqual(self.search("FROM Carol"), [3])
        self.assertEqual(self.search("TO someone"), [1, 2, 3, 4])
        self.assertEqual(self.search('HEADER Message-ID "<delta@remote.example>"'), [4])

    def test_search_body_and_text(self):
        self.assertEqual(self.search("BODY fox"), [1, 4])
        self.assertEqual(self.search("BODY alpha"), [], "BODY does not look at the header")
        self.assertEqual(self.search("TEXT carol"), [3], "TEXT looks at the header too")
        self.assertEqual(self.search("TEXT lazy"), [2])

    def test_search_larger_smaller(self):
        self.assertEqual(self.search("LARGER 3000"), [2])
        self.assertEqual(self.search("SMALLER 3000"), [1, 3, 4])

    def test_search_since_before_on(self):
        self.assertEqual(self.search("SINCE 1-Jan-2022"), [3, 4])
        self.assertEqual(self.search("BEFORE 1-Jan-2021"), [1])
        self.assertEqual(self.search("ON 15-Jun-2021"), [2])
        self.assertEqual(self.search("SINCE 15-Jun-2021 BEFORE 16-Jun-2021"), [2])

    def test_uid_search_returns_uids(self):
        self.assertEqual(self.search("FLAGGED", uid=True), [1, 4])
        self.assertEqual(self.search("UID 2:3", uid=False), [2, 3])
        self.assertEqual(self.search("UID 3:*", uid=True), [3, 4])

    def test_search_or_not(self):
        self.assertEqual(self.search("OR FLAGGED FROM carol"), [1, 3, 4])
        self.assertEqual(self.search("NOT SEEN"), [2, 4])
        self.assertEqual(self.search("NOT FROM bob"), [1, 3])
        self.assertEqual(self.search("OR (SUBJECT beta) (SUBJECT delta)"), [2, 4])

    def test_search_sequence_set(self):
        self.assertEqual(self.search("2:3"), [2, 3])
        self.assertEqual(self.search("1:3 UNSEEN"), [2])
        self.assertEqual(self.search("*"), [4])
        self.assertEqual(self.search("2,4 FLAGGED"), [4])

    def test_search_charset_utf8(self):
        self.assertEqual(self.search("CHARSET UTF-8 SUBJECT gamma"), [3])
        r = self.c.cmd("SEARCH CHARSET KOI8-R SUBJECT gamma")
        self.assertStatus(r, "NO", "BADCHARSET")

    def test_esearch_return_min_max_count_all(self):
        r = self.c.ok("SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
        self.assertEqual(r.lines(), [f'ESEARCH (TAG "{r.tag}") MIN 1 MAX 4 COUNT 2 ALL 1,4'])
        r = self.c.ok("UID SEARCH RETURN (COUNT) ALL")
        self.assertEqual(r.lines(), [f'ESEARCH (TAG "{r.tag}") UID COUNT 4'])
        r = self.c.ok("SEARCH RETURN () 1:3")
        self.assertEqual(r.lines(), [f'ESEARCH (TAG "{r.tag}") ALL 1:3'])
        r = self.c.ok("SEARCH RETURN (MIN MAX) SUBJECT nothing-matches")
        self.assertEqual(r.lines(), [f'ESEARCH (TAG "{r.tag}")'])

    def test_search_sent_dates_use_the_date_header(self):
        name, _ = self.user()
        c = self.connect(login=name)
        m = message("dated", extra="Date: Tue, 3 Mar 2026 10:00:00 +0100\r\n")
        c.ok(f'APPEND INBOX "01-Jan-2020 12:00:00 +0000" {{{len(m)}+}}\r\n'.encode() + m)
        c.select()
        self.assertEqual(c.ok("SEARCH SENTSINCE 1-Mar-2026").lines(), ["SEARCH 1"])
        self.assertEqual(c.ok("SEARCH SENTON 3-Mar-2026").lines(), ["SEARCH 1"])
        self.assertEqual(c.ok("SEARCH SINCE 1-Mar-2026").lines(), ["SEARCH"])
        self.assertEqual(c.ok("SEARCH SENTBEFORE 1-Mar-2026").lines(), ["SEARCH"])

    def test_search_string_as_literal(self):
        c = self.c
        c.send("s1 SEARCH SUBJECT {5}\r\n")
        self.assertTrue(c.response().startswith(b"+"))
        c.send("ALPHA\r\n")
        r = c.read_until_tagged("s1")
        self.assertEqual(r.lines(), ["SEARCH 1 3"])

    def test_search_decodes_mime_encoded_subject_and_base64_body(self):
        # What a client's "search on server" is after: the text as the user
        # sees it, not the transfer encoding.
        name, _ = self.user()
        c = self.connect(login=name)
        m = EmailMessage()
        m["From"] = "J\u00fcrgen <j@remote.example>"
        m["To"] = "x@example.test"
        m["Subject"] = "Gr\u00fc\u00dfe aus K\u00f6ln"
        m.set_content("Der Bericht \u00fcber Umsatzzahlen.\n", cte="base64")
        raw = m.as_bytes(policy=email.policy.SMTP)
        self.assertIn(b"=?utf-8?", raw.lower())
        c.ok(f"APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw)
        c.select()
        for key, word in (("SUBJECT", "K\u00f6ln"), ("BODY", "Umsatzzahlen"),
                          ("TEXT", "Umsatzzahlen"), ("FROM", "J\u00fcrgen")):
            w = word.encode()
            c.send(f"s1 SEARCH CHARSET UTF-8 {key} {{{len(w)}+}}\r\n".encode() + w + b"\r\n")
            r = c.read_until_tagged("s1")
            self.assertEqual(r.lines(), ["SEARCH 1"], f"{key} {word}")

    def test_search_header_keys_with_quotes_groups_and_raw_8bit(self):
        # SUBJECT/FROM/TO/CC are answered from the cached ENVELOPE: quoting,
        # literals (8-bit), groups and a second address must all still match.
        name, _ = self.user()
        c = self.connect(login=name)
        raw = ("From: \"Smith, \\\"JJ\\\"\" <js@a.example>\r\n"
               "To: undisclosed: ;, Zoe <zoe@z.example>\r\n"
               "Cc: team: p@d.example, q@e.example;\r\n"
               "Subject: a \"quoted\" back\\slash Gr\u00fc\u00dfe\r\n"
               "\r\nbody\r\n").encode()
        c.ok(f"APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw)
        c.ok(f"APPEND INBOX {{{len(raw) - 6}+}}\r\n".encode()
             + raw.replace(b"back\\slash", b"plain"))
        c.select()
        cases = (("SUBJECT", 'back\\slash', [1]), ("SUBJECT", '"quoted"', [1, 2]),
                 ("SUBJECT", "Gr\u00fc\u00dfe", [1, 2]), ("FROM", 'Smith, "JJ"', [1, 2]),
                 ("FROM", "js@a.example", [1, 2]), ("TO", "zoe@z", [1, 2]),
                 ("CC", "q@e.example", [1, 2]), ("CC", "nobody", []),
                 ("BCC", "js", []))
        for key, word, want in cases:
            w = word.encode()
            c.send(f"s1 SEARCH CHARSET UTF-8 {key} {{{len(w)}+}}\r\n".encode() + w + b"\r\n")
            r = c.read_until_tagged("s1")
            self.assertEqual(r.lines(), ["SEARCH" + "".join(f" {n}" for n in want)],
                             f"{key} {word}")

    def test_odd_search_keys_answered_without_crash(self):
        for crit in ("LARGER 99999999999999999999", "UID 4294967295", "1:4294967295",
                     "SINCE 31-Feb-2020", 'HEADER "" ""', "OR", "NOT", "()", "OR ALL",
                     "NOT " * 500 + "ALL", "OR " * 300 + "ALL " * 301, "KEYWORD \\Seen",
                     "UNKEYWORD x", "SMALLER -1", "BEFORE 1-Jan-1900", "SINCE 1-Jan-9999",
                     "MODSEQ 5", "$", "NEW", "OLD", "RECENT", "DRAFT UNDRAFT", "ANSWERED"):
            r = self.c.cmd(f"SEARCH {crit}")
            self.assertIn(r.status, ("OK", "BAD", "NO"), f"{crit}: {r}")
        self.assertStatus(self.c.cmd("NOOP"), "OK")

    def test_search_bad_key_bad(self):
        self.assertStatus(self.c.cmd("SEARCH BOGUS"), "BAD")
        self.assertStatus(self.c.cmd("SEARCH SINCE notadate"), "BAD")
        self.assertStatus(self.c.cmd("NOOP"), "OK")


class SearchRes(SearchCase):
    """RFC 5182 (part of IMAP4rev2): SEARCH RETURN (SAVE) keeps what it
    found for "$", in every command that takes a set; SELECT and a failed
    SAVE empty it.  Uses Search's four messages (flagged: 1 and 4)."""

    def fetched_uids(self, command):
        r = self.c.ok(command)
        return sorted(int(items["UID"]) for _, items in r.fetches())

    def test_save_alone_answers_nothing_then_dollar_names_the_result(self):
        r = self.c.ok("SEARCH RETURN (SAVE) FLAGGED")
        self.assertEqual(r.lines(), [], "SAVE alone gives no ESEARCH")
        self.assertEqual(self.fetched_uids("FETCH $ (UID)"), [1, 4])
        self.assertEqual(self.fetched_uids("UID FETCH $ (UID)"), [1, 4])
        self.assertEqual(self.search("$"), [1, 4])
        self.assertEqual(self.search("UID $ SEEN"), [1])
        self.assertEqual(self.search("NOT $"), [2, 3])

    def test_save_with_min_max_keeps_only_those(self):
        r = self.c.ok("SEARCH RETURN (SAVE MIN) ALL")
        self.assertEqual(r.lines(), [f'ESEARCH (TAG "{r.tag}") MIN 1'])
        self.assertEqual(self.fetched_uids("FETCH $ (UID)"), [1])
        self.c.ok("SEARCH RETURN (MAX SAVE COUNT) 1:3")
        self.assertEqual(self.fetched_uids("FETCH $ (UID)"), [3])

    def test_dollar_is_empty_before_any_save_and_after_select(self):
        self.assertEqual(self.fetched_uids("FETCH $ (UID)"), [])
        self.c.ok("SEARCH RETURN (SAVE) ALL")
        self.c.ok("EXAMINE INBOX")
        self.assertEqual(self.fetched_uids("FETCH $ (UID)"), [])

    def test_failed_save_empties_dollar(self):
        self.c.ok("SEARCH RETURN (SAVE) ALL")
        self.assertStatus(self.c.cmd("SEARCH RETURN (SAVE) BOGUSKEY"), "BAD")
        self.assertEqual(self.fetched_uids("FETCH $ (UID)"), [])
        self.c.ok("SEARCH RETURN (SAVE) ALL")
        self.assertStatus(self.c.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL"), "NO")
        self.assertEqual(self.fetched_uids("FETCH $ (UID)"), [])

    def test_search_using_dollar_and_saving_sees_the_old_result(self):
        self.c.ok("SEARCH RETURN (SAVE) FLAGGED")
        self.c.ok("SEARCH RETURN (SAVE) $ SEEN")
        self.assertEqual(self.fetched_uids("FETCH $ (UID)"), [1])

    def test_unknown_return_option_bad(self):
        self.assertStatus(self.c.cmd("SEARCH RETURN (PARTIAL) ALL"), "BAD")
        self.assertStatus(self.c.cmd("SEARCH RETURN (MIN MAX) ALL"), "OK")

    def test_sort_save_and_expunged_messages_leave_dollar(self):
        name, _ = self.user()
        c = self.connect(login=name)
        for i in range(5):
            m = message(f"m{i}", b"x" * (10 * (5 - i)) + b"\r\n")
            c.ok(f"APPEND INBOX {{{len(m)}+}}\r\n".encode() + m)
        c.select()
        r = c.ok("SORT RETURN (SAVE) (SIZE) UTF-8 2:4")
        self.assertEqual(r.lines(), [])
        c.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        r = c.ok("UID FETCH $ (UID)")
        self.assertEqual(sorted(int(i["UID"]) for _, i in r.fetches()), [2, 4])
        c.ok("CREATE Keep")
        c.ok("COPY $ Keep")
        self.assertIn("MESSAGES 2", c.ok("STATUS Keep (MESSAGES)").lines()[0])
        c.ok("UID STORE $ +FLAGS.SILENT (\\Deleted)")
        c.ok("UID EXPUNGE $")
        r = c.ok("FETCH 1:* (UID)")
        self.assertEqual(sorted(int(i["UID"]) for _, i in r.fetches()), [1, 5])

    def test_searchres_advertised(self):
        self.assertIn("SEARCHRES", self.c.ok("CAPABILITY").lines()[0].split())


# --- two sessions on one mailbox -----------------------------------------------------------

class Concurrent(ImapCase):
    def two(self, n):
        name, addr = self.user("two")
        for i in range(n):
            self.deliver(addr, message(f"two {i + 1}"))
        a = self.connect(login=name, select="INBOX")
        b = self.connect(login=name, select="INBOX")
        return name, addr, a, b

    def test_store_in_one_session_is_fetch_in_the_other_at_noop(self):
        _, _, a, b = self.two(3)
        b.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
        r = a.ok("NOOP")
        f = r.fetches()
        self.assertEqual(len(f), 1, r)
        self.assertEqual(f[0][0], 2)
        self.assertIn("\\Flagged", flag_set(f[0][1]["FLAGS"]))
        self.assertEqual(a.ok("NOOP").untagged, [], "told once")

    def test_store_keeps_a_change_this_session_has_not_seen_yet(self):
        # b flags a message; a, not yet told, adds its own flags: both stay,
        # and a hears of b's flag in its STORE's FETCH (even with .SILENT).
        _, _, a, b = self.two(3)
        b.ok("STORE 1:2 +FLAGS.SILENT (\\Flagged $Work)")
        r = a.ok("STORE 2 +FLAGS.SILENT (\\Draft)")
        got = {s: flag_set(i["FLAGS"]) - {"\\Recent"} for s, i in r.fetches()}
        self.assertEqual(got[2], {"\\Draft", "\\Flagged", "$Work"})
        r = a.ok("STORE 1 +FLAGS (\\Answered)")
        got = {s: flag_set(i["FLAGS"]) - {"\\Recent"} for s, i in r.fetches()}
        self.assertEqual(got[1], {"\\Answered", "\\Flagged", "$Work"})
        b.ok("STORE 3 +FLAGS.SILENT (\\Flagged)")
        a.ok("FETCH 3 BODY[TEXT]")                      # implicit \Seen
        flags = {s: flag_set(i["FLAGS"]) - {"\\Recent"}
                 for s, i in b.ok("FETCH 1:3 (FLAGS)").fetches()}
        self.assertEqual(flags, {1: {"\\Answered", "\\Flagged", "$Work"},
                                 2: {"\\Draft", "\\Flagged", "$Work"},
                                 3: {"\\Flagged", "\\Seen"}})

    def test_expunge_in_one_session_reaches_the_other_at_noop_not_during_fetch(self):
        _, _, a, b = self.two(4)
        b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        r = a.ok("FETCH 1:4 (UID)")
        self.assertEqual(r.matching("EXPUNGE"), [], "no EXPUNGE during FETCH")
        seq_uid = {s: int(i["UID"]) for s, i in r.fetches()}
        for s, u in seq_uid.items():
            self.assertEqual(s, u, f"sequence numbers still valid: {seq_uid}")
        self.assertEqual(a.ok("FETCH 3 (UID)").fetches()[0][1]["UID"], "3")
        r = a.ok("STORE 4 +FLAGS (\\Seen)")
        self.assertEqual(r.matching("EXPUNGE"), [], "no EXPUNGE during STORE")
        self.assertEqual(r.fetches()[0][0], 4)
        r = a.ok("SEARCH ALL")
        self.assertEqual(r.matching("EXPUNGE"), [], "no EXPUNGE during SEARCH")
        r = a.ok("NOOP")
        self.assertEqual(r.matching("EXPUNGE"), ["2 EXPUNGE"])
        self.assertEqual([int(i["UID"]) for _, i in a.ok("FETCH 1:* UID").fetches()], [1, 3, 4])

    def test_own_expunge_with_a_pending_expunge_from_the_other_session(self):
        _, _, a, b = self.two(5)
        b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        a.ok("FETCH 1 FLAGS")                       # A has not been told yet
        a.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
        r = a.ok("EXPUNGE")
        self.assertEqual(apply_expunges([1, 2, 3, 4, 5], r), [1, 3, 5], r)
        self.assertEqual([int(i["UID"]) for _, i in a.ok("FETCH 1:* UID").fetches()], [1, 3, 5])

    def test_new_message_is_exists_in_the_other_at_noop(self):
        name, addr, a, b = self.two(1)
        self.deliver(addr, message("two new"))
        self.assertIn("2 EXISTS", a.ok("NOOP").lines())
        self.assertIn("2 EXISTS", b.ok("NOOP").lines())

    def test_mailbox_deleted_under_a_selected_session(self):
        name, _, a, b = self.two(0)
        a.ok("CREATE Gone")
        a.ok("SELECT Gone")
        b.ok("DELETE Gone")
        a.send("n1 NOOP\r\n")
        # BYE and close (as Dovecot does), or an answer; never a crash.
        first = a.response()
        if first.startswith(b"* BYE"):
            self.assertTrue(a.closed_by_server())
        else:
            a.buf = first + b"\r\n" + a.buf
            self.assertIn(a.read_until_tagged("n1").status, ("OK", "NO"))
        b.ok("CREATE Gone")
        b.ok("SELECT Gone")

    def test_keyword_from_other_session_announced_with_flags(self):
        _, _, a, b = self.two(1)
        b.ok("STORE 1 +FLAGS.SILENT (NewKeyword)")
        r = a.ok("NOOP")
        self.assertTrue(r.matching(r"^FLAGS \(.*NewKeyword"), r)
        self.assertIn("NewKeyword", flag_set(r.fetches()[0][1]["FLAGS"]))


# --- IDLE ---------------------------------------------------------------------------------

class Idle(ImapCase):
    def idle(self, c):
        c.send("i1 IDLE\r\n")
        r = c.response()
        self.assertTrue(r.startswith(b"+"), r)

    def wait_untagged(self, c, pattern, timeout):
        """The first untagged response matching pattern within timeout: (text, seconds)."""
        t0 = time.monotonic()
        c.sock.settimeout(timeout)
        seen = []
        try:
            while True:
                r = c.response().decode()
                seen.append(r)
                if re.search(pattern, r):
                    return r, time.monotonic() - t0
        except socket.timeout:
            self.fail(f"no {pattern!r} within {timeout} s; got {seen}")
        finally:
            c.sock.settimeout(TIMEOUT)

    def done(self, c):
        c.send("DONE\r\n")
        self.assertStatus(c.read_until_tagged("i1"), "OK")

    def test_idle_sees_exists_within_1s_of_smtp_delivery(self):
        name, addr = self.user("idle")
        self.deliver(addr, message("before idle"))
        c = self.connect(login=name, select="INBOX")
        self.idle(c)
        time.sleep(0.2)
        self.deliver(addr, message("during idle"))
        t_delivered = time.monotonic()
        c.sock.settimeout(1.0)
        got = []
        try:
            while not any(re.match(r"\* 2 EXISTS$", g) for g in got):
                got.append(c.response().decode())
        except socket.timeout:
            self.fail(f"no '* 2 EXISTS' within 1 s of the 250; got {got}")
        self.assertLess(time.monotonic() - t_delivered, 1.0)
        c.sock.settimeout(TIMEOUT)
        self.done(c)

    def test_idle_sees_expunge_from_another_session_within_1s(self):
        name, addr = self.user("idle")
        for i in range(3):
            self.deliver(addr, message(f"idle x {i}"))
        a = self.connect(login=name, select="INBOX")
        b = self.connect(login=name, select="INBOX")
        self.idle(a)
        time.sleep(0.2)
        b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        text, secs = self.wait_untagged(a, r"^\* 2 EXPUNGE$", 1.0)
        self.assertLess(secs, 1.0)
        self.done(a)
        self.assertEqual([int(i["UID"]) for _, i in a.ok("FETCH 1:* UID").fetches()], [1, 3])

    def test_idle_sees_flag_change_from_another_session_within_1s(self):
        name, addr = self.user("idle")
        self.deliver(addr, message("idle flag"))
        a = self.connect(login=name, select="INBOX")
        b = self.connect(login=name, select="INBOX")
        self.idle(a)
        time.sleep(0.2)
        b.ok("STORE 1 +FLAGS.SILENT (\\Answered)")
        text, _ = self.wait_untagged(a, r"^\* 1 FETCH ", 1.0)
        self.assertIn("\\Answered", text)
        self.done(a)

    def test_idle_on_trash_sees_message_moved_there_by_another_session(self):
        name, addr = self.user("idle")
        self.deliver(addr, message("to be moved"))
        a = self.connect(login=name, select="Trash")
        b = self.connect(login=name, select="INBOX")
        self.idle(a)
        time.sleep(0.2)
        b.ok("MOVE 1 Trash")
        self.wait_untagged(a, r"^\* 1 EXISTS$", 1.0)
        self.done(a)

    def test_idle_sees_seen_set_by_another_sessions_fetch(self):
        name, addr = self.user("idle")
        self.deliver(addr, message("read elsewhere"))
        a = self.connect(login=name, select="INBOX")
        b = self.connect(login=name, select="INBOX")
        self.idle(a)
        time.sleep(0.2)
        b.ok("FETCH 1 BODY[]")
        text, _ = self.wait_untagged(a, r"^\* 1 FETCH ", 1.0)
        self.assertIn("\\Seen", text)
        self.done(a)

    def test_idle_view_after_done_has_every_flag_keyword_and_recent(self):
        # An IDLE session's view sleeps as bare uid ranges; after DONE its
        # flags, keywords, \Recent and sequence numbers must be whole again,
        # with what changed meanwhile announced once.
        name, addr = self.user("idle")
        for i in range(6):
            self.deliver(addr, message(f"sleepy {i}"))
        a = self.connect(login=name, select="INBOX")
        a.ok("STORE 1 +FLAGS.SILENT ($Work \\Seen)")
        a.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")                                 # uids 1 2 3 5 6: a gap
        b = self.connect(login=name, select="INBOX")
        self.idle(a)
        time.sleep(0.2)
        b.ok("STORE 2 +FLAGS.SILENT (\\Flagged $Later)")
        self.wait_untagged(a, r"^\* 2 FETCH ", 1.0)
        b.ok("STORE 5 +FLAGS.SILENT (\\Deleted)")      # uid 6
        b.ok("EXPUNGE")
        self.wait_untagged(a, r"^\* 5 EXPUNGE$", 1.0)
        self.deliver(addr, message("while asleep"))
        self.wait_untagged(a, r"^\* 5 EXISTS$", 1.0)
        b.ok("STORE 3 +FLAGS.SILENT (\\Answered)")      # uid 3, announced at DONE at the latest
        a.send("DONE\r\n")
        r = a.read_until_tagged("i1")
        self.assertStatus(r, "OK")
        got = {int(i["UID"]): {f.lower() for f in flag_set(i["FLAGS"])}
               for _, i in a.ok("FETCH 1:* (UID FLAGS)").fetches()}
        self.assertEqual(sorted(got), [1, 2, 3, 5, 7])
        self.assertEqual(got[1], {"$work", "\\seen", "\\recent"})
        self.assertEqual(got[2], {"\\flagged", "$later", "\\recent"})
        self.assertEqual(got[3], {"\\answered", "\\recent"})
        self.assertEqual(got[5], {"\\recent"})
        self.assertEqual(got[7], {"\\recent"})
        self.assertEqual(a.ok("SEARCH KEYWORD $Later").matching(r"^SEARCH")[0], "SEARCH 2")

    def test_idle_done_ends_with_ok_and_session_goes_on(self):
        name, _ = self.user("idle")
        c = self.connect(login=name, select="INBOX")
        self.idle(c)
        self.done(c)
        self.assertStatus(c.cmd("NOOP"), "OK")
        self.idle(c)
        c.send("done\r\n")          # case-insensitive
        self.assertStatus(c.read_until_tagged("i1"), "OK")

    def test_idle_done_pipelined_with_the_next_command(self):
        name, _ = self.user("idle")
        c = self.connect(login=name, select="INBOX")
        self.idle(c)
        c.send("DONE\r\nn1 NOOP\r\n")
        self.assertStatus(c.read_until_tagged("i1"), "OK")
        self.assertStatus(c.read_until_tagged("n1"), "OK")

    def test_idle_many_deliveries_each_announced(self):
        name, addr = self.user("idle")
        c = self.connect(login=name, select="INBOX")
        self.idle(c)
        for i in range(5):
            self.deliver(addr, message(f"burst {i}"))
        text, _ = self.wait_untagged(c, r"^\* 5 EXISTS$", 5.0)
        self.done(c)


# --- real clients: curl ---------------------------------------------------------------------

class Curl(ImapCase):
    def curl(self, url, name, *args, binary=False):
        r = subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT), url, "--user",
                            f"{name}:{PASSWORD}", *args], capture_output=True, timeout=TIMEOUT + 10)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return r.stdout if binary else r.stdout.decode()

    def test_curl_lists_mailboxes(self):
        name, _ = self.user("curl")
        out = self.curl(f"imap://127.0.0.1:{self.port}/", name)
        names = [re.search(r'"/" "?([^"\r\n]+)"?\s*$', l).group(1) for l in out.splitlines() if l]
        self.assertEqual(sorted(names), ["Drafts", "INBOX", "Junk", "Sent", "Trash"])

    def test_curl_inbox_url_lists(self):
        name, addr = self.user("curl")
        self.deliver(addr, message("curl list"))
        self.connect(login=name).ok("CREATE INBOX/Sub")
        out = self.curl(f"imap://127.0.0.1:{self.port}/INBOX", name)     # LIST "INBOX" *
        self.assertEqual(out.splitlines(), ['* LIST (\\HasChildren) "/" "INBOX"',
                                            '* LIST (\\HasNoChildren) "/" "INBOX/Sub"'])

    def test_curl_fetch_uid_1_exact_message(self):
        name, addr = self.user("curl")
        content = message("curl fetch", b"Body line\r\n\xc3\xa4\r\n")
        self.deliver(addr, content)
        out = self.curl(f"imap://127.0.0.1:{self.port}/INBOX;UID=1", name, binary=True)
        self.assertEqual(out, self.stored(name)[0])
        self.assertEqual(split_trace(out)[1], content)

    def test_curl_search_and_custom_request(self):
        name, addr = self.user("curl")
        self.deliver(addr, message("curl search one"))
        self.deliver(addr, message("curl search two"))
        out = self.curl(f"imap://127.0.0.1:{self.port}/INBOX?SUBJECT%20two", name)
        self.assertEqual(out.split(), ["*", "SEARCH", "2"])
        out = self.curl(f"imap://127.0.0.1:{self.port}/", name, "-X", 'STATUS INBOX (MESSAGES)')
        self.assertIn("MESSAGES 2", out)


# --- hostile input ---------------------------------------------------------------------------

class Hostile(ImapCase):
    def test_unterminated_literal_then_disconnect_server_unharmed(self):
        c = self.connect()
        c.send("a1 LOGIN {10}\r\n")
        self.assertTrue(c.response().startswith(b"+"))
        c.send("abc")
        c.close()
        name, _ = self.user()
        c2 = self.connect(login=name)
        self.assertStatus(c2.cmd("NOOP"), "OK")

    def test_literal_completed_later_command_goes_on(self):
        name, _ = self.user()
        c = self.connect()
        c.send(f"a1 LOGIN {{{len(name)}}}\r\n")
        self.assertTrue(c.response().startswith(b"+"))
        c.send(name[:2])
        time.sleep(0.3)
        c.send(name[2:] + f" {PASSWORD}\r\n")
        self.assertStatus(c.read_until_tagged("a1"), "OK")

    def test_literal_of_2_32_refused_no_crash(self):
        c = self.connect()
        c.send("a1 LOGIN {4294967296}\r\n")
        r = c.read_until_tagged("a1")
        self.assertIn(r.status, ("NO", "BAD"), r)
        self.assertStatus(c.cmd("NOOP"), "OK")
        c2 = self.connect()
        c2.send("a2 LOGIN {4294967296+}\r\nabc\r\n")
        # A non-synchronizing literal that big: a NO/BAD or BYE and close.
        data = c2.pending(2)
        self.assertTrue(re.search(rb"(^|\r\n)(\* BYE|a2 (NO|BAD))", data), data)
        c3 = self.connect()
        self.assertStatus(c3.cmd("NOOP"), "OK")

    def test_literal_of_2_64_refused_no_crash(self):
        c = self.connect()
        c.send("a1 LOGIN {18446744073709551616}\r\n")
        r = c.read_until_tagged("a1")
        self.assertIn(r.status, ("NO", "BAD"), r)
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_1000_nested_parentheses_bad(self):
        name, _ = self.user()
        c = self.connect(login=name, select="INBOX")
        r = c.cmd("SEARCH " + "(" * 1000 + "ALL" + ")" * 1000)
        self.assertEqual(r.status, "BAD", r)
        r = c.cmd("FETCH 1 " + "(" * 1000 + ")" * 1000)
        self.assertEqual(r.status, "BAD", r)
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_8bit_atom_refused_session_goes_on(self):
        name, _ = self.user()
        c = self.connect()
        r = c.cmd(b"LOGIN \xff\xfe\xc3 pw")
        self.assertIn(r.status, ("BAD", "NO"), r)
        c.login(name)
        r = c.cmd(b"SELECT \xe9t\xe9")
        self.assertIn(r.status, ("BAD", "NO"), r)
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_100kb_line_bye_and_close_others_still_served(self):
        name, _ = self.user()
        other = self.connect(login=name, select="INBOX")
        c = self.connect()
        c.send("a1 NOOP " + "x" * 100 * 1024 + "\r\n")
        self.assertTrue(c.closed_by_server(10), "a 100 KB line closes the connection")
        self.assertTrue(c.buf.startswith(b"* BYE") or b"\r\n* BYE" in c.buf, c.buf[:200])
        self.assertStatus(other.cmd("NOOP"), "OK")
        self.assertStatus(self.connect(login=name).cmd("NOOP"), "OK")

    def test_command_line_just_under_the_limit_answered(self):
        c = self.connect()
        r = c.cmd("NOOP " + "x" * 60000)
        self.assertIn(r.status, ("OK", "BAD"))
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_garbage_tags_and_commands_bad(self):
        c = self.connect()
        for line in (b"\r\n", b"a1\r\n", b"* NOOP\r\n", b"+ NOOP\r\n", b"a1 FROB\r\n",
                     b"a1 NOOP \x00\r\n", b'a1 LOGIN "unterminated\r\n', b"a1 UID\r\n",
                     b"a1 UID NOOP\r\n"):
            c.send(line)
            r = c.response()
            self.assertRegex(r, rb"^(\*|a1) BAD", line)
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_literal_size_over_limit_in_command_refused_session_goes_on(self):
        c = self.connect()
        c.send("a1 LOGIN {100000}\r\n")
        r = c.read_until_tagged("a1")
        self.assertIn(r.status, ("NO", "BAD"), r)
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_nonsync_literal_over_limit_skipped_in_step(self):
        c = self.connect()
        c.send(b"a1 LOGIN {70000+}\r\n" + b"y" * 70000 + b" x\r\n")
        r = c.read_until_tagged("a1")
        self.assertIn(r.status, ("NO", "BAD"), r)
        r = c.cmd("NOOP")
        self.assertStatus(r, "OK")

    def test_refused_nonsync_literal_rest_of_line_is_not_a_command(self):
        # After a non-synchronizing literal that is refused and skipped, the
        # rest of that command line belongs to the refused command: it is
        # neither executed nor answered as a command of its own.
        name, _ = self.user()
        c = self.connect(login=name)
        c.send(b"a1 LOGIN {70000+}\r\n" + b"y" * 70000 + b"x2 CREATE Injected\r\n")
        r = c.read_until_tagged("a1")
        self.assertIn(r.status, ("NO", "BAD"), r)
        r = c.cmd("NOOP", tag="b")
        self.assertStatus(r, "OK")
        self.assertEqual(r.untagged, [], "no answer to the rest of the refused line")
        self.assertNotIn(b"x2 ", c.pending(0.3))
        self.assertEqual(list_entries(c.ok('LIST "" "Injected"')), [],
                         "the tail of the refused line was executed as a command")

    def test_refused_nonsync_literal_followed_by_another_literal_stays_in_step(self):
        # The refused command's line goes on with a second LITERAL+ whose
        # bytes look like a command: they are data of the refused command.
        name, _ = self.user()
        c = self.connect(login=name)
        tail = b"x3 CREATE Injected2\r\n"
        c.send(b"a1 LOGIN {70000+}\r\n" + b"y" * 70000 + b" {%d+}\r\n" % len(tail) + tail
               + b"\r\n")
        r = c.read_until_tagged("a1")
        self.assertIn(r.status, ("NO", "BAD"), r)
        r = c.cmd("NOOP", tag="b")
        self.assertStatus(r, "OK")
        self.assertEqual(r.untagged, [], "no answer to the rest of the refused command")
        self.assertEqual(list_entries(c.ok('LIST "" "Injected2"')), [],
                         "a literal of the refused command was executed as a command")

    def test_refused_append_literal_plus_rest_of_line_no_spurious_bad(self):
        name, _ = self.user()
        c = self.connect(login=name)
        m = message("nowhere")
        r = c.cmd(f"APPEND Missing {{{len(m)}+}}\r\n".encode() + m)
        self.assertIn(r.status, ("NO",), r)
        r = c.cmd("NOOP", tag="b")
        self.assertEqual(r.untagged, [], "a spurious untagged response after the refused APPEND")

    def test_client_gone_during_big_fetch_server_unharmed(self):
        name, addr = self.user()
        self.deliver(addr, message("big", b"z" * (3 << 20) + b"\r\n"))
        c = self.connect(login=name, select="INBOX")
        c.send("f1 FETCH 1 BODY[]\r\n")
        c.sock.recv(1000)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        c.close()
        c2 = self.connect(login=name, select="INBOX")
        (_, it), = c2.ok("FETCH 1 (FLAGS RFC822.SIZE)").fetches()
        self.assertIn("\\Seen", flag_set(it["FLAGS"]))

    def test_client_gone_during_append_literal_nothing_stored_no_temp_file(self):
        name, _ = self.user()
        c = self.connect(login=name)
        c.send("a1 APPEND INBOX {1000000}\r\n")
        self.assertTrue(c.response().startswith(b"+"))
        c.send(b"x" * 400000)
        time.sleep(0.2)
        c.close()
        tmp = os.path.join(self.mc.settings["data_directory"], "tmp")
        self.assertTrue(wait_for(lambda: not os.listdir(tmp), 5),
                        f"temp files left behind: {os.listdir(tmp)}")
        c2 = self.connect(login=name)
        self.assertEqual(status_of(c2.ok("STATUS INBOX (MESSAGES)"), "INBOX"), {"MESSAGES": 0})

    def test_client_gone_during_failed_login_delay(self):
        name, _ = self.user()
        for _ in range(3):
            c = self.connect()
            c.send(f"a1 LOGIN {name} wrong\r\n")
            time.sleep(0.05)
            c.close()
        time.sleep(1.0)             # the delays run out with nobody to answer
        self.assertStatus(self.connect(login=name).cmd("NOOP"), "OK")

    def test_client_gone_during_idle(self):
        name, addr = self.user()
        c = self.connect(login=name, select="INBOX")
        c.send("i1 IDLE\r\n")
        self.assertTrue(c.response().startswith(b"+"))
        c.close()
        self.deliver(addr, message("nobody idles"))
        self.assertStatus(self.connect(login=name, select="INBOX").cmd("NOOP"), "OK")

    def test_plaintext_on_imaps_port_closed(self):
        c = Imap(self.imaps_port, greet=False)
        self.addCleanup(c.close)
        c.send("a1 LOGIN x y\r\n")
        self.assertTrue(c.closed_by_server(10))
        self.assertNotIn(b"a1 ", c.buf)

    def test_odd_store_and_append_answered_without_crash(self):
        name, addr = self.user()
        self.deliver(addr, message("odd"))
        c = self.connect(login=name, select="INBOX")
        for cmd in ("STORE 1 +FLAGS (\\Bogus)", "STORE 1 FLAGS.SILENT", "STORE 1 +FLAGS ((x))",
                    "STORE 1 +FLAGS (" + "x" * 300 + ")", "STORE 1 BOGUS (\\Seen)",
                    "STORE 1:* +FLAGS ()", "STORE 5 +FLAGS (\\Seen)", "COPY 1 \"\"",
                    "MOVE 1 INBOX", "COPY 1:* INBOX", 'APPEND INBOX (\\Recent) {1+}\r\nx',
                    'APPEND INBOX () "31-Feb-2020 00:00:00 +0000" {1+}\r\nx',
                    'APPEND INBOX "bogus" {1+}\r\nx', "APPEND INBOX", "APPEND",
                    'CREATE ""', "CREATE /", "CREATE a//b", 'RENAME INBOX INBOX',
                    "RENAME Sent Sent/sub", "DELETE \"\"", 'SELECT ""', "STATUS INBOX ()",
                    'LIST "" "' + "*%" * 200 + '"', 'LIST ("bogus") "" "*"',
                    'LIST "" "*" RETURN (STATUS (BOGUS))', "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
                    "SELECT INBOX (CONDSTORE)", "ENABLE CONDSTORE QRESYNC", "EXPUNGE", "CHECK"):
            r = c.cmd(cmd)
            self.assertIn(r.status, ("OK", "BAD", "NO"), f"{cmd}: {r}")
            if cmd.startswith("SELECT"):
                c.select()
        self.assertStatus(c.cmd("NOOP"), "OK")

    def test_pipelined_commands_answered_in_order(self):
        name, _ = self.user()
        c = self.connect()
        c.send(f"p1 LOGIN {name} {PASSWORD}\r\np2 SELECT INBOX\r\np3 NOOP\r\np4 LOGOUT\r\n")
        for t in ("p1", "p2", "p3", "p4"):
            self.assertStatus(c.read_until_tagged(t), "OK")

    def test_many_sessions_at_once(self):
        name, _ = self.user()
        conns = [self.connect() for _ in range(40)]
        for c in conns:
            c.send(f"a LOGIN {name} {PASSWORD}\r\n")
        for c in conns:
            self.assertStatus(c.read_until_tagged("a"), "OK")


# --- connection limits: an instance of their own --------------------------------------------

class ConnectionLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mc = Instance(testd=TESTD, imap_user_connection_limit="3",
                          imap_client_connection_limit="5")
        cls.mc.__enter__()
        try:
            cls.mc.start()
            cls.mc.add_user("limited", PASSWORD)
        except BaseException:
            cls.mc.__exit__(*sys.exc_info())
            raise
        cls.port = int(cls.mc.settings["imap_port"])

    @classmethod
    def tearDownClass(cls):
        try:
            status = cls.mc.stop()
        finally:
            cls.mc.__exit__(None, None, None)
        if status != 0:
            raise AssertionError(f"master exit status {status}")

    def setUp(self):
        # Every session the server logged as opened has been closed (the
        # previous test's connections no longer count).
        def quiet():
            log = self.mc.read_log()
            return (len(re.findall(r"imapd\[\d+\]: connect from ", log)) ==
                    len(re.findall(r"imapd\[\d+\]: disconnect from ", log)))
        self.assertTrue(wait_for(quiet, 10, 0.1), "sessions of the previous test still open")

    def conn(self):
        c = Imap(self.port)
        self.addCleanup(c.close)
        return c

    def test_user_connection_limit_3_fourth_login_no_limit(self):
        conns = [self.conn() for _ in range(4)]
        for c in conns[:3]:
            self.assertEqual(c.cmd(f"LOGIN limited {PASSWORD}").status, "OK")
        r = conns[3].cmd(f"LOGIN limited@Example.Test {PASSWORD}")
        self.assertEqual(r.status, "NO", r)
        self.assertEqual(r.code, "LIMIT", r)
        conns[0].ok("LOGOUT")
        conns[0].closed_by_server()
        ok = wait_for(lambda: conns[3].cmd(f"LOGIN limited {PASSWORD}").status == "OK", 5, 0.2)
        self.assertTrue(ok, "a login is possible again once a session of the user ends")

    def test_client_connection_limit_5_sixth_gets_bye(self):
        conns = [self.conn() for _ in range(5)]
        for c in conns:
            self.assertTrue(c.greeting.startswith(b"* OK"), c.greeting)
        sixth = Imap(self.port, greet=False)
        self.addCleanup(sixth.close)
        try:
            line = sixth.response()
        except (EOFError, ConnectionResetError):
            line = b""
        self.assertTrue(line.startswith(b"* BYE"), line)
        self.assertTrue(sixth.closed_by_server())
        for c in conns:
            self.assertEqual(c.cmd("NOOP").status, "OK")
        conns[0].close()
        def sixth_ok():
            try:
                c = Imap(self.port)
            except (EOFError, OSError):
                return False
            c.close()
            return c.greeting.startswith(b"* OK")
        self.assertTrue(wait_for(sixth_ok, 5, 0.2))


if __name__ == "__main__":
    unittest.main()
