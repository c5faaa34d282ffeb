"""smtpd: inbound SMTP as the upstream relay, a mail client and an attacker see it.

Runs the real smtpd (submitd, imapd and relayq are testd stand-ins) and talks
to it with smtplib, with a raw socket where the exact bytes on the wire
matter (pipelining, smuggling, STARTTLS injection, BDAT), and with swaks and
curl.  What is checked is what a client or a user sees: reply codes and
enhanced status codes, and the stored messages (`mailctl message list|cat`):
Return-Path: and Received: first, then exactly the bytes the client sent
after dot-unstuffing.  The only log lines checked are the Postfix-format
ones that fail2ban and pflogsumm read.

Most tests share one instance (message_size_limit = 64k) and use fresh users
of their own; after each, no smtpd may have died and no temp file may be
left.  Limits, timeouts, shutdown and the kill -9 test get instances of
their own.
"""
import concurrent.futures
import itertools
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from smtpraw import Raw, Reply
from mcfixture import Instance, proc_status, wait_for

TESTD = ("submitd", "imapd", "relayq")     # everything but smtpd is a stand-in
TIMEOUT = 20                               # seconds, for any one network operation
SIZE_LIMIT = 65536


# --- clients --------------------------------------------------------------

class LocalhostContext(ssl.SSLContext):
    """Verifies the fixture's certificate for "localhost" while smtplib connects
    to 127.0.0.1 (smtplib passes the connect host as server_hostname)."""

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname="localhost", **kwargs)


def tls_context(cert):
    ctx = LocalhostContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert)
    return ctx


def split_trace(raw):
    """A stored message: (Return-Path line, Received header, the rest), as
    str, str, bytes; the header texts without their final CRLF."""
    if not raw.startswith(b"Return-Path: "):
        raise AssertionError(f"stored message does not start with Return-Path: {raw[:200]!r}")
    rp_end = raw.index(b"\r\n") + 2
    if not raw.startswith(b"Received: ", rp_end):
        raise AssertionError(f"no Received: after Return-Path: {raw[:400]!r}")
    end = raw.index(b"\r\n", rp_end) + 2
    while raw[end:end + 1] in (b" ", b"\t"):
        end = raw.index(b"\r\n", end) + 2
    return raw[:rp_end - 2].decode(), raw[rp_end:end - 2].decode(), raw[end:]


def unfold(header):
    return re.sub(r"\r\n[ \t]+", " ", header)


def message(subject, body=b"Hello.\r\n", sender="sender@remote.example",
            to="someone@example.test"):
    """A small RFC 5322 message with CRLF line ends, as bytes."""
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@remote.example>\r\n\r\n").encode() + body


def dot_stuff(content):
    return re.sub(rb"(?m)^\.", b"..", content)


def smtp(port, helo="client.example", timeout=TIMEOUT):
    return smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=timeout)


def asan_linked(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


def cpu_ticks(pid):
    """utime + stime of a process, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def rss_kb(pid):
    st = proc_status(pid) or {}
    return int(st.get("VmRSS", "0 kB").split()[0])


# --- the shared instance ----------------------------------------------------

_shared = None
_users = itertools.count(1)


def shared():
    global _shared
    if _shared is None:
        mc = Instance(testd=TESTD, message_size_limit="64k",
                      smtpd_client_connection_limit="200")
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


class SmtpdCase(unittest.TestCase):
    """Base: the shared instance, fresh users, and sanitizer reports per test."""

    @classmethod
    def setUpClass(cls):
        cls.mc = shared()
        cls.port = int(cls.mc.settings["smtpd_port"])

    def setUp(self):
        self.reports_before = self.mc.sanitizer_mark()
        self.smtpd_before = self.mc.pids_of("smtpd")

    def tearDown(self):
        self.mc.check_sanitizer_since(self.reports_before)
        tmp = os.path.join(self.mc.settings["data_directory"], "tmp")
        if not wait_for(lambda: not os.listdir(tmp), 5):
            self.fail(f"temp files left behind in {tmp}: {os.listdir(tmp)}")
        if self.mc.pids_of("smtpd") != self.smtpd_before:
            log = [l for l in self.mc.read_log().splitlines() if "smtpd" in l]
            self.fail(f"smtpd processes changed during the test (crash?): "
                      f"{self.smtpd_before} -> {self.mc.pids_of('smtpd')}\n"
                      + "\n".join(log[-20:]))

    def user(self, prefix="u"):
        """A new user of the shared instance: (name, address)."""
        name = f"{prefix}{next(_users)}"
        self.mc.add_user(name)
        return name, f"{name}@example.test"

    def alias(self, address, user):
        self.mc.mailctl("alias", "add", address, user, check=True)

    def inbox(self, user, mailbox="INBOX"):
        return self.mc.messages(user, mailbox)

    def assertReply(self, reply, code, status=None, msg=None):
        self.assertEqual(reply.code, code, msg or reply)
        if status is not None:
            self.assertTrue(reply.text.startswith(status + " "), msg or reply)

    def assertStored(self, raw, content, sender=None):
        """raw is trace headers followed by exactly content."""
        rp, received, rest = split_trace(raw)
        if sender is not None:
            self.assertEqual(rp, f"Return-Path: <{sender}>")
        self.assertEqual(rest, content)
        return received

    def session(self, helo="client.example"):
        """A raw session after EHLO."""
        c = Raw(self.port)
        self.addCleanup(c.close)
        self.assertReply(c.greeting, 220)
        self.assertReply(c.cmd("EHLO " + helo), 250)
        return c


# --- delivery -----------------------------------------------------------------

class Delivery(SmtpdCase):
    CONTENT = (b"From: Sender <sender@remote.example>\r\n"
               b"To: <someone@example.test>\r\n"
               b"Subject: delivery test\r\n"
               b"Message-ID: <delivery.1@remote.example>\r\n"
               b"\r\n"
               b"Hello,\r\n"
               b"  indented, with a trailing space \r\n"
               b"\xc3\xa9t\xc3\xa9: eight-bit text\r\n"
               b"\tTab\r\n"
               b"\r\n"
               b"last line\r\n")

    def test_delivery_one_message_lands_in_inbox_only_with_exact_bytes(self):
        name, addr = self.user()
        other, _ = self.user()
        with smtp(self.port, helo="client.example") as s:
            refused = s.sendmail("sender@remote.example", [addr], self.CONTENT,
                                 mail_options=["BODY=8BITMIME"])
        self.assertEqual(refused, {})
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        received = unfold(self.assertStored(msgs[0], self.CONTENT, "sender@remote.example"))
        self.assertRegex(received, r"^Received: from client\.example \(unknown \[127\.0\.0\.1\]\)"
                                   r" by \S+ \(mailcore\) with ESMTP id \w+ for <"
                                   + re.escape(addr) + ">; ")
        for box in ("Sent", "Drafts", "Trash", "Junk"):
            self.assertEqual(self.mc.message_list(name, box), [], box)
        self.assertEqual(self.mc.message_list(other), [])
        listed = self.mc.message_list(name)[0]
        self.assertEqual(listed["size"], len(msgs[0]))

    def test_delivery_three_addresses_of_one_user_stored_once(self):
        name, addr = self.user()
        self.alias(f"sales-{name}@example.test", name)
        content = message("one copy")
        with smtp(self.port) as s:
            refused = s.sendmail("sender@remote.example",
                                 [addr, f"Sales-{name}@Example.Test", f"{name}+news@example.test",
                                  addr.upper()], content)
        self.assertEqual(refused, {})
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1, "one copy per user, however many of its addresses")
        self.assertStored(msgs[0], content, "sender@remote.example")

    def test_delivery_to_two_users_same_bytes_in_both_inboxes(self):
        a, a_addr = self.user()
        b, b_addr = self.user()
        content = message("two users")
        with smtp(self.port) as s:
            self.assertEqual(s.sendmail("sender@remote.example", [a_addr, b_addr], content), {})
        ma, mb = self.inbox(a), self.inbox(b)
        self.assertEqual((len(ma), len(mb)), (1, 1))
        self.assertStored(ma[0], content, "sender@remote.example")
        self.assertEqual(ma[0], mb[0])

    def test_delivery_after_helo_received_says_smtp(self):
        name, addr = self.user()
        c = Raw(self.port)
        self.addCleanup(c.close)
        self.assertReply(c.cmd("HELO old-client.example"), 250)
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        content = message("helo")
        c.send(content + b".\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        received = unfold(self.assertStored(self.inbox(name)[0], content))
        self.assertIn("from old-client.example (unknown [127.0.0.1])", received)
        self.assertIn(" with SMTP id ", received)

    def test_delivery_smtputf8_sender(self):
        name, addr = self.user()
        c = self.session()
        self.assertEqual(c.cmd("MAIL FROM:<j\u00f6rg@r\u00e9mote.example>").code // 100, 5,
                         "non-ASCII sender without SMTPUTF8")
        self.assertReply(c.cmd("MAIL FROM:<j\u00f6rg@r\u00e9mote.example> SMTPUTF8"),
                         250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        content = message("utf8", "Gr\u00fc\u00dfe\r\n".encode())
        c.send(content + b".\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        rp, _, rest = split_trace(self.inbox(name)[0])
        self.assertEqual(rp, "Return-Path: <j\u00f6rg@r\u00e9mote.example>")
        self.assertEqual(rest, content)

    def test_delivery_null_sender_return_path_is_empty(self):
        name, addr = self.user()
        content = message("bounce")
        with smtp(self.port) as s:
            self.assertEqual(s.sendmail("<>", [addr], content), {})
        self.assertStored(self.inbox(name)[0], content, "")


# --- addresses ------------------------------------------------------------------

class Addresses(SmtpdCase):
    def deliver(self, rcpt, subject):
        content = message(subject)
        with smtp(self.port) as s:
            self.assertEqual(s.sendmail("sender@remote.example", [rcpt], content), {})
        return content

    def test_alias_delivers_to_its_user(self):
        name, _ = self.user()
        self.alias(f"info-{name}@example.test", name)
        content = self.deliver(f"info-{name}@example.test", "via alias")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content)

    def test_plus_address_delivers_to_user_and_alias(self):
        name, _ = self.user()
        self.alias(f"team-{name}@example.test", name)
        c1 = self.deliver(f"{name}+shopping@example.test", "plus user")
        c2 = self.deliver(f"team-{name}+tag@example.test", "plus alias")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 2)
        self.assertStored(msgs[0], c1)
        self.assertStored(msgs[1], c2)

    def test_address_case_insensitive_in_local_part_and_domain(self):
        name, addr = self.user()
        for i, rcpt in enumerate((addr.upper(), f"{name.capitalize()}@Example.TEST")):
            self.deliver(rcpt, f"case {i}")
        self.assertEqual(len(self.inbox(name)), 2)

    def test_domain_of_any_user_is_local(self):
        name, _ = self.user()
        self.mc.add_user(f"{name}x@other-local.test")
        self.deliver(f"{name}x@Other-Local.Test", "other local domain")
        self.assertEqual(len(self.inbox(f"{name}x")), 1)
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<nobody@other-local.test>"), 550, "5.1.1")

    def test_postmaster_without_domain_reaches_postmaster_alias(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<postmaster>"), 550, "5.1.1",
                         "no postmaster alias yet: unknown user")
        name, _ = self.user("pm")
        self.alias("postmaster@example.test", name)
        self.assertReply(c.cmd("RCPT TO:<Postmaster>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<POSTMASTER@example.test>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        content = message("to postmaster")
        c.send(content + b".\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content, "s@remote.example")

    def test_unknown_local_user_550_5_1_1_others_still_get_the_message(self):
        name, addr = self.user()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        r = c.cmd("RCPT TO:<no-such-user@example.test>")
        self.assertReply(r, 550, "5.1.1")
        self.assertIn("<no-such-user@example.test>: Recipient address rejected: "
                      "User unknown in local recipient table", r.text)
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<no-such-user+tag@example.test>"), 550, "5.1.1")
        self.assertReply(c.cmd("DATA"), 354)
        content = message("mixed recipients")
        c.send(content + b".\r\nQUIT\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 221)
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content)


class Relay(SmtpdCase):
    def test_relay_attempts_all_refused_550_5_7_1_nothing_delivered(self):
        name, addr = self.user()
        attempts = [f"{name}@other.example",
                    f"{name}%other.example@example.test",
                    f"other.example!{name}@example.test",
                    f'"{name}"@example.test',
                    f"@example.test:{name}@other.example",
                    f"@other.example:{name}@example.test",
                    f"{name}@[127.0.0.1]",
                    f"{name}@example.test.other.example"]
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        for rcpt in attempts:
            with self.subTest(rcpt=rcpt):
                self.assertReply(c.cmd(f"RCPT TO:<{rcpt}>"), 550, "5.7.1")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        # Once more with a valid recipient beside them: only that one gets it.
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{attempts[0]}>"), 550, "5.7.1")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(message("relay") + b".\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        _, received, _ = split_trace(msgs[0])
        self.assertIn(f"for <{addr}>", unfold(received))
        queue = self.mc.settings["queue_directory"]
        queued = [f for _, _, files in os.walk(queue) for f in files]
        self.assertEqual(queued, [], "smtpd must never queue for relaying")


# --- SIZE -------------------------------------------------------------------------

class Size(SmtpdCase):
    def test_size_advertised_and_mail_from_size_above_limit_552_5_3_4(self):
        c = Raw(self.port)
        self.addCleanup(c.close)
        ehlo = c.cmd("EHLO client.example")
        self.assertIn(f"SIZE {SIZE_LIMIT}", ehlo.lines)
        self.assertReply(c.cmd(f"MAIL FROM:<s@remote.example> SIZE={SIZE_LIMIT + 1}"),
                         552, "5.3.4")
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example> SIZE=99999999999999999"),
                         552, "5.3.4")
        self.assertReply(c.cmd(f"MAIL FROM:<s@remote.example> SIZE={SIZE_LIMIT}"),
                         250, "2.1.0")

    def test_size_body_over_limit_552_5_3_4_nothing_stored_session_goes_on(self):
        name, addr = self.user()
        big = message("too big", b"x" * 70 + b"\r\n") + (b"y" * 998 + b"\r\n") * 70
        self.assertGreater(len(big), SIZE_LIMIT)
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(big + b".\r\n")
        self.assertReply(c.reply(), 552, "5.3.4")
        self.assertEqual(self.inbox(name), [])
        # The session goes on: a small message is delivered, and only it.
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        small = message("small after big")
        c.send(small + b".\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], small)

    def test_size_message_of_exactly_the_limit_is_accepted(self):
        name, addr = self.user()
        head = message("exactly the limit", b"")
        line = b"z" * 62 + b"\r\n"
        body = line * ((SIZE_LIMIT - len(head)) // len(line))
        body += b"w" * (SIZE_LIMIT - len(head) - len(body) - 2) + b"\r\n"
        content = head + body
        self.assertEqual(len(content), SIZE_LIMIT)
        with smtp(self.port) as s:
            self.assertEqual(s.sendmail("s@remote.example", [addr], content), {})
            # One byte more, without SIZE= (smtplib would send it): 552 after the data.
            self.assertEqual(s.mail("s@remote.example")[0], 250)
            self.assertEqual(s.rcpt(addr)[0], 250)
            code, text = s.data(content + b"!\r\n")
            self.assertEqual((code, text[:6]), (552, b"5.3.4 "))
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content)

    def test_size_bdat_over_limit_552_5_3_4_nothing_stored(self):
        name, addr = self.user()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        chunk = (b"b" * 78 + b"\r\n") * 900
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 250, "2.0.0")
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 552, "5.3.4")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertEqual(self.inbox(name), [])


# --- PIPELINING ---------------------------------------------------------------------

class Pipelining(SmtpdCase):
    def test_pipelining_whole_transactions_in_one_write_each(self):
        a, a_addr = self.user()
        b, b_addr = self.user()
        c = Raw(self.port)
        self.addCleanup(c.close)
        c.send(f"EHLO client.example\r\nMAIL FROM:<s@remote.example>\r\n"
               f"RCPT TO:<{a_addr}>\r\nRCPT TO:<{b_addr}>\r\nDATA\r\n")
        ehlo = c.reply()
        self.assertReply(ehlo, 250)
        self.assertIn("PIPELINING", ehlo.lines)
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 354)
        first = message("pipelined one", b"first\r\n.hidden dot\r\n")
        second = message("pipelined two", b"second\r\n")
        # End of the first message, then a whole second transaction and QUIT,
        # in the same write.
        c.send(dot_stuff(first) + b".\r\n"
               + f"MAIL FROM:<t@remote.example>\r\nRCPT TO:<{a_addr}>\r\nDATA\r\n".encode()
               + dot_stuff(second) + b".\r\nQUIT\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 354)
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 221, "2.0.0")
        self.assertTrue(c.closed_by_server())
        msgs_a, msgs_b = self.inbox(a), self.inbox(b)
        self.assertEqual((len(msgs_a), len(msgs_b)), (2, 1))
        self.assertStored(msgs_a[0], first, "s@remote.example")
        self.assertStored(msgs_a[1], second, "t@remote.example")
        self.assertEqual(msgs_b[0], msgs_a[0])


# --- STARTTLS -------------------------------------------------------------------------

class StartTLS(SmtpdCase):
    def test_starttls_then_mail_received_says_esmtps_and_tls_version(self):
        name, addr = self.user()
        content = message("over tls")
        with smtp(self.port, helo="tls-client.example") as s:
            s.ehlo()
            self.assertTrue(s.has_extn("starttls"))
            code, _ = s.starttls(context=tls_context(self.mc.cert))
            self.assertEqual(code, 220)
            version = s.sock.version()
            s.ehlo()
            self.assertFalse(s.has_extn("starttls"), "STARTTLS offered inside TLS")
            self.assertEqual(s.sendmail("s@remote.example", [addr], content), {})
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        received = unfold(self.assertStored(msgs[0], content, "s@remote.example"))
        self.assertIn("from tls-client.example (unknown [127.0.0.1])", received)
        self.assertIn(" with ESMTPS ", received)
        self.assertIn(f"(using {version} ", received)

    def test_starttls_discards_commands_pipelined_before_handshake(self):
        name, addr = self.user()
        c = self.session()
        c.send("STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
        self.assertReply(c.reply(), 220, "2.0.0")
        self.assertEqual(c.buf, b"", "plaintext after the 220")
        c.starttls(ssl.create_default_context(cafile=self.mc.cert))
        # The first reply over TLS is the EHLO's: nothing answers the injected MAIL.
        ehlo = c.cmd("EHLO client.example")
        self.assertReply(ehlo, 250)
        self.assertNotIn("STARTTLS", ehlo.lines)
        self.assertReply(c.cmd("MAIL FROM:<good@x>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        content = message("after injection")
        c.send(content + b".\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content, "good@x")

    def test_starttls_inside_tls_554_5_5_1(self):
        c = self.session()
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.starttls(ssl.create_default_context(cafile=self.mc.cert))
        self.assertReply(c.cmd("EHLO client.example"), 250)
        self.assertReply(c.cmd("STARTTLS"), 554, "5.5.1")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_starttls_forgets_helo_and_transaction(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<before@x>"), 250, "2.1.0")
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.starttls(ssl.create_default_context(cafile=self.mc.cert))
        self.assertReply(c.cmd("MAIL FROM:<after@x>"), 503, "5.5.1")
        self.assertReply(c.cmd("EHLO client.example"), 250)
        self.assertReply(c.cmd("RCPT TO:<postmaster@example.test>"), 503, "5.5.1")


# --- CHUNKING ------------------------------------------------------------------------------

class Chunking(SmtpdCase):
    def mail_rcpt(self, c, addr):
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")

    def test_bdat_two_chunks_delivered_with_exact_bytes(self):
        name, addr = self.user()
        c = self.session()
        self.assertIn("CHUNKING", c.cmd("EHLO client.example").lines)
        self.mail_rcpt(c, addr)
        # No dot-stuffing in BDAT; a CRLF split across the chunks is one CRLF.
        chunk1 = message("bdat", b".a leading dot stays\r\n..two stay\r\nsplit line\r")
        chunk2 = b"\nend\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        self.assertIn(str(len(chunk1)), r.text)
        c.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2 + b"QUIT\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 221)
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], chunk1 + chunk2, "s@remote.example")

    def test_bdat_0_last_ends_the_message(self):
        name, addr = self.user()
        c = self.session()
        self.mail_rcpt(c, addr)
        content = message("bdat zero last")
        c.send(b"BDAT %d\r\n" % len(content) + content + b"BDAT 0 LAST\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content)

    def test_bdat_before_rcpt_refused_after_its_chunk_is_read(self):
        name, addr = self.user()
        c = self.session()
        chunk = b"QUIT\r\nQUIT\r\n"                 # would end the session if read as commands
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 503, "5.5.1")  # no MAIL
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 503, "5.5.1")  # no RCPT
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        content = message("bdat after refusal")
        c.send(b"BDAT %d LAST\r\n" % len(content) + content)
        self.assertReply(c.reply(), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content)

    def test_data_after_bdat_503(self):
        name, addr = self.user()
        c = self.session()
        self.mail_rcpt(c, addr)
        c.send(b"BDAT 5\r\nabcde")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertEqual(self.inbox(name), [])

    def test_bdat_bare_lf_refused_550_5_6_11(self):
        name, addr = self.user()
        c = self.session()
        self.mail_rcpt(c, addr)
        content = message("bdat bare lf", b"line\n.\nMAIL FROM:<x@y>\r\n")
        c.send(b"BDAT %d LAST\r\n" % len(content) + content)
        self.assertReply(c.reply(), 550, "5.6.11")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertEqual(self.inbox(name), [])


# --- SMTP smuggling ---------------------------------------------------------------------------

class Smuggling(SmtpdCase):
    SEPARATORS = (b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n")

    def test_smuggling_every_fake_end_of_data_refused_550_5_6_11_nothing_stored(self):
        name, addr = self.user()
        for sep in self.SEPARATORS:
            with self.subTest(separator=sep):
                c = self.session()
                self.assertReply(c.cmd("MAIL FROM:<outer@remote.example>"), 250, "2.1.0")
                self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
                self.assertReply(c.cmd("DATA"), 354)
                smuggled = (f"MAIL FROM:<smuggler@evil.example>\r\nRCPT TO:<{addr}>\r\n"
                            f"DATA\r\nFrom: <ceo@example.test>\r\nSubject: smuggled\r\n\r\n"
                            f"smuggled body\r\n").encode()
                c.send(message("outer") + b"outer body" + sep + smuggled + b".\r\n")
                self.assertReply(c.reply(), 550, "5.6.11")
                # Nothing else was answered: the next reply is the NOOP's.
                self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
                self.assertReply(c.cmd("QUIT"), 221)
                self.assertTrue(c.closed_by_server())
                self.assertEqual(c.buf, b"")
                self.assertEqual(self.inbox(name), [], "no message, outer or smuggled")

    def test_nul_byte_in_data_refused_550_5_6_0(self):
        name, addr = self.user()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(message("nul", b"a\x00b\r\n") + b".\r\n")
        self.assertReply(c.reply(), 550, "5.6.0")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertEqual(self.inbox(name), [])

    def test_dot_stuffed_lines_are_unstuffed(self):
        name, addr = self.user()
        content = message("dots", b".leading dot\r\n..two dots\r\n.\t\r\n.. \r\n"
                                  b"middle . dot\r\n..\r\n...\r\n.")
        content += b"\r\n"
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(dot_stuff(content) + b".\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content)

    def test_data_split_into_one_byte_writes_same_bytes_stored(self):
        name, addr = self.user()
        content = message("byte by byte", b".dot\r\n\r\n..\r\nend\r\n")
        c = self.session()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        for i, byte in enumerate(dot_stuff(content) + b".\r\n"):
            c.send(bytes([byte]))
            if i % 8 == 0:
                time.sleep(0.002)
        self.assertReply(c.reply(), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content)

    def test_data_empty_message_stored_as_trace_headers_only(self):
        name, addr = self.user()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b".\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], b"")


class Disconnects(SmtpdCase):
    def test_client_gone_mid_data_nothing_stored_server_unharmed(self):
        name, addr = self.user()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(message("half") + b"half a message")
        c.reset()
        with smtp(self.port) as s:                 # the server goes on
            self.assertEqual(s.noop()[0], 250)
        self.assertEqual(self.inbox(name), [])

    def test_client_gone_right_after_end_of_data_message_stored_once(self):
        name, addr = self.user()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        content = message("gone before the reply")
        c.send(content + b".\r\nQUIT\r\n")
        c.reset()
        # The whole message was received: it is delivered (as Postfix does),
        # once, and the server survives answering a connection that is gone.
        self.assertTrue(wait_for(lambda: self.mc.message_list(name), 5))
        with smtp(self.port) as s:
            self.assertEqual(s.noop()[0], 250)
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        self.assertStored(msgs[0], content)

    def test_client_gone_in_bdat_chunk_nothing_stored(self):
        name, addr = self.user()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<{addr}>"), 250, "2.1.5")
        c.send(b"BDAT 100000000 LAST\r\n" + message("bdat cut"))
        c.reset()
        with smtp(self.port) as s:
            self.assertEqual(s.noop()[0], 250)
        self.assertEqual(self.inbox(name), [])


# --- command lines and sessions ------------------------------------------------------------------

class CommandLines(SmtpdCase):
    def test_command_line_of_600_bytes_500_5_5_2_session_goes_on(self):
        c = self.session()
        self.assertReply(c.cmd("NOOP " + "x" * 595), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_command_line_of_10mb_without_lf_500_5_5_2_memory_bounded(self):
        pids = self.mc.pids_of("smtpd")
        c = self.session()
        self.assertReply(c.cmd("NOOP"), 250)       # both workers past start-up
        before = {pid: rss_kb(pid) for pid in pids}
        block = b"A" * (1 << 20)
        for _ in range(10):
            c.send(block)
        peak = {pid: rss_kb(pid) for pid in pids}
        c.send(b"\r\nNOOP\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        self.assertReply(c.reply(), 250, "2.0.0")  # one 500 for the whole line
        after = {pid: rss_kb(pid) for pid in pids}
        if any(asan_linked(pid) for pid in pids):
            # ASan keeps freed buffers in its quarantine (256 MB), so RSS
            # grows with every buffer a long line passes through even when
            # the program holds only one: the bound is checked by the plain
            # build, the ASan run checks the same path for memory errors.
            return
        for pid in pids:
            grown = max(peak[pid], after[pid]) - before[pid]
            self.assertLess(grown, 4096, f"smtpd {pid} grew by {grown} kB")

    def test_empty_line_500_5_5_2(self):
        c = self.session()
        self.assertReply(c.cmd(""), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_unknown_command_502_5_5_2(self):
        c = self.session()
        self.assertReply(c.cmd("FROB nicate"), 502, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_vrfy_252(self):
        name, addr = self.user()
        c = self.session()
        self.assertReply(c.cmd(f"VRFY {addr}"), 252)
        self.assertReply(c.cmd("VRFY nobody@example.test"), 252, msg="VRFY must not tell")

    def test_mail_before_ehlo_503_5_5_1(self):
        c = Raw(self.port)
        self.addCleanup(c.close)
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 503, "5.5.1")
        self.assertReply(c.cmd("RCPT TO:<postmaster@example.test>"), 503, "5.5.1")
        self.assertReply(c.cmd("HELO client.example"), 250)
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("MAIL FROM:<s@remote.example>"), 503, "5.5.1")

    def test_command_count_bounded_noop_flood_ends_session(self):
        # SPEC 3: the command count is bounded (Postfix: smtpd_junk_command_limit,
        # then the error limit ends the session with 421).
        c = self.session()
        batch = b"NOOP\r\n" * 1000
        for n in range(100):
            c.send(batch)
            for i in range(1000):
                try:
                    r = c.reply()
                except EOFError:
                    self.fail(f"closed without 421 after {n * 1000 + i} NOOPs")
                if r.code != 250:
                    self.assertEqual(r.code, 421, r)
                    self.assertTrue(c.closed_by_server())
                    return
        self.fail("100000 NOOPs in one session, all answered 250: no bound on commands")

    def test_quit_221_and_close(self):
        c = self.session()
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.assertTrue(c.closed_by_server())


class PipelinedFlood(SmtpdCase):
    """A client that pipelines commands without reading the replies: the
    server must stop reading when its replies cannot be sent (as Postfix's
    blocking writes do), so that no reply is lost and memory stays flat.
    EHLO is used because it is no junk command (NOOP would meet
    smtpd_junk_command_limit) and has a long reply."""
    N = 300_000             # 6 MB of EHLO, 40 MB of replies

    def test_pipelined_flood_without_reading_replies_loses_no_reply_memory_bounded(self):
        pids = self.mc.pids_of("smtpd")
        c = Raw(self.port)
        self.addCleanup(c.close)
        ehlo = c.cmd("EHLO flood.example")
        self.assertReply(ehlo, 250)
        per_ehlo = len(ehlo.lines)
        c.sock.settimeout(0.5)
        before = {pid: rss_kb(pid) for pid in pids}
        payload = memoryview(b"EHLO flood.example\r\n" * self.N)
        sent = [0, time.monotonic()]            # bytes sent, time of the last progress

        def sender():
            deadline = time.monotonic() + 120
            while sent[0] < len(payload) and time.monotonic() < deadline:
                try:
                    sent[0] += c.sock.send(payload[sent[0]:sent[0] + 65536])
                    sent[1] = time.monotonic()
                except socket.timeout:
                    continue
                except OSError:
                    return

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        # Read nothing until the sender is done or blocked and smtpd is idle
        # (it has taken all it will take).
        peak, cpu = dict(before), None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.25)
            for pid in pids:
                peak[pid] = max(peak[pid], rss_kb(pid))
            now_cpu = sum(cpu_ticks(pid) for pid in pids)
            idle = now_cpu == cpu
            cpu = now_cpu
            if idle and (sent[0] == len(payload) or time.monotonic() - sent[1] > 1):
                break
        data, nlines = bytearray(), 0
        quiet = time.monotonic()
        while nlines < self.N * per_ehlo and time.monotonic() - quiet < 5:
            try:
                chunk = c.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
            nlines += chunk.count(b"\n")
            quiet = time.monotonic()
        t.join(30)
        c.sock.settimeout(TIMEOUT)
        lines = bytes(data).split(b"\r\n")[:-1]
        ok = sum(1 for line in lines if line.startswith(b"250"))
        with self.subTest("every command answered"):
            if ok < len(lines):        # a 421 may end the session (command bound)
                self.assertTrue(lines[ok].startswith(b"421 "), lines[ok])
                self.assertEqual(ok + 1, len(lines), "replies after the 421")
            else:
                self.assertEqual(sent[0], len(payload), "sender stuck")
                self.assertEqual(ok // per_ehlo, self.N,
                                 f"{self.N - ok // per_ehlo} of {self.N} EHLO replies lost")
                self.assertEqual(lines.count(ehlo.lines[-1].encode().join([b"250 ", b""])),
                                 self.N)
                self.assertReply(c.cmd("NOOP"), 250)
        if any(asan_linked(pid) for pid in pids):
            return                                   # see the 10 MB line test
        with self.subTest("server memory bounded"):
            for pid in pids:
                grown = peak[pid] - before[pid]
                self.assertLess(grown, 4096, f"smtpd {pid} grew by {grown} kB while the "
                                             f"client did not read")


# --- real clients ----------------------------------------------------------------------------

class RealClients(SmtpdCase):
    def run_client(self, argv):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, f"{argv[0]} exit {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r

    def test_swaks_delivers(self):
        name, addr = self.user()
        self.run_client(["swaks", "--server", f"127.0.0.1:{self.port}", "--to", addr,
                         "--from", "x@remote.example", "--helo", "swaks.example",
                         "--header", "Subject: from swaks", "--body", "swaks body marker",
                         "--timeout", "20"])
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        _, received, rest = split_trace(msgs[0])
        self.assertIn("from swaks.example (unknown [127.0.0.1])", unfold(received))
        self.assertIn(b"Subject: from swaks\r\n", rest)
        self.assertIn(b"swaks body marker", rest)

    def test_swaks_starttls_delivers(self):
        name, addr = self.user()
        r = self.run_client(["swaks", "--server", f"127.0.0.1:{self.port}", "--to", addr,
                             "--from", "x@remote.example", "--helo", "swaks.example", "-tls",
                             "--header", "Subject: swaks tls", "--body", "tls body marker",
                             "--timeout", "20"])
        self.assertIn("TLS started", r.stdout)
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        _, received, rest = split_trace(msgs[0])
        self.assertIn(" with ESMTPS ", unfold(received))
        self.assertIn(b"tls body marker", rest)

    def test_curl_delivers_exact_bytes(self):
        name, addr = self.user()
        content = message("from curl", b"curl body\r\n.line with a leading dot\r\n")
        with tempfile.NamedTemporaryFile(suffix=".eml") as f:
            f.write(content)
            f.flush()
            self.run_client(["curl", "-sS", "--max-time", "30",
                             f"smtp://127.0.0.1:{self.port}/curl.example",
                             "--mail-from", "x@remote.example", "--mail-rcpt", addr,
                             "-T", f.name])
        msgs = self.inbox(name)
        self.assertEqual(len(msgs), 1)
        received = self.assertStored(msgs[0], content, "x@remote.example")
        self.assertIn("from curl.example (unknown [127.0.0.1])", unfold(received))


# --- log format (read by fail2ban and pflogsumm) ---------------------------------------------

class LogFormat(SmtpdCase):
    def test_log_noqueue_reject_line_for_unknown_user(self):
        name, _ = self.user()
        c = self.session(helo=f"helo-{name}.example")
        self.assertReply(c.cmd(f"MAIL FROM:<from-{name}@remote.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<nobody-{name}@example.test>"), 550, "5.1.1")
        want = re.compile(
            r"mailcore/smtpd\[\d+\]: NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: "
            rf"550 5\.1\.1 <nobody-{name}@example\.test>: Recipient address rejected: "
            r"User unknown in local recipient table; "
            rf"from=<from-{name}@remote\.example> to=<nobody-{name}@example\.test> "
            rf"proto=ESMTP helo=<helo-{name}\.example>$", re.M)
        self.assertTrue(wait_for(lambda: want.search(self.mc.read_log()), 5),
                        "no NOQUEUE line like " + want.pattern)

    def test_log_delivery_lines_from_size_nrcpt_and_to_status_sent(self):
        a, a_addr = self.user()
        b, b_addr = self.user()
        c = self.session()
        self.assertReply(c.cmd(f"MAIL FROM:<from-{a}@remote.example>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{a_addr}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{b_addr}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(message("logged") + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        qid = re.search(r"queued as (\w+)", r.text).group(1)
        size = self.mc.message_list(a)[0]["size"]
        lines = [
            rf"mailcore/smtpd\[\d+\]: {qid}: client=unknown\[127\.0\.0\.1\]$",
            rf"mailcore/smtpd\[\d+\]: {qid}: from=<from-{a}@remote\.example>, size={size}, "
            r"nrcpt=2 \(queue active\)$",
            rf"mailcore/smtpd\[\d+\]: {qid}: to=<{a_addr}>, relay=local, delay=[\d.e+-]+, "
            r"delays=[\d.e+/-]+, dsn=2\.0\.0, status=sent \(.*\)$",
            rf"mailcore/smtpd\[\d+\]: {qid}: to=<{b_addr}>, relay=local, .*dsn=2\.0\.0, "
            r"status=sent ",
            rf"mailcore/smtpd\[\d+\]: {qid}: removed$",
        ]
        for pat in lines:
            rx = re.compile(pat, re.M)
            self.assertTrue(wait_for(lambda: rx.search(self.mc.read_log()), 5),
                            "no log line like " + pat)


# --- load ---------------------------------------------------------------------------------------

class Load(SmtpdCase):
    def test_load_500_sessions_in_a_row_all_250_all_stored(self):
        name, addr = self.user("load")
        deadline = time.monotonic() + 90
        for i in range(500):
            self.assertLess(time.monotonic(), deadline, f"only {i} sessions in 90 s")
            with smtp(self.port) as s:
                self.assertEqual(s.sendmail("s@remote.example", [addr],
                                            message(f"seq {i}")), {}, i)
        self.assertEqual(len(self.mc.message_list(name)), 500)

    def test_load_100_sessions_at_once_all_250_all_stored(self):
        name, addr = self.user("load")
        barrier = threading.Barrier(100, timeout=30)
        results = [None] * 100

        def client(i):
            try:
                barrier.wait()
                with smtp(self.port, timeout=30) as s:
                    s.ehlo()
                    code, _ = s.mail("s@remote.example")
                    assert code == 250, (code, "MAIL")
                    code, _ = s.rcpt(addr)
                    assert code == 250, (code, "RCPT")
                    code, text = s.data(message(f"parallel {i}"))
                    results[i] = code
            except Exception as e:      # reported below, per client
                results[i] = repr(e)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running after 90 s")
        failed = {i: r for i, r in enumerate(results) if r != 250}
        self.assertEqual(failed, {})
        msgs = self.mc.message_list(name)
        self.assertEqual(len(msgs), 100)


# --- limits (own instances) ----------------------------------------------------------------------

class Limits(unittest.TestCase):
    def setUp(self):
        self.mc = Instance(testd=TESTD, smtpd_hard_error_limit="5", smtpd_recipient_limit="3",
                           smtpd_timeout="2s", smtpd_session_timeout="10s",
                           smtpd_client_connection_limit="3", worker_processes="1")
        self.mc.__enter__()
        self.mc.start()
        self.port = int(self.mc.settings["smtpd_port"])

    def tearDown(self):
        try:
            self.assertEqual(self.mc.stop(), 0)
        finally:
            self.mc.__exit__(None, None, None)

    def test_error_limit_421_4_7_0_after_5_errors_and_close(self):
        with Raw(self.port) as c:
            self.assertEqual(c.cmd("EHLO client.example").code, 250)
            for i in range(4):
                self.assertEqual(c.cmd("FROB").code, 502, i)
            self.assertEqual(c.cmd("NOOP").code, 250)
            r = c.cmd("FROB")
            self.assertEqual(r.code, 502)
            r = c.reply()
            self.assertEqual(r.code, 421, r)
            self.assertTrue(r.text.startswith("4.7.0 "), r)
            self.assertTrue(c.closed_by_server())

    def test_recipient_limit_fourth_rcpt_452_4_5_3(self):
        names = []
        for n in ("r1", "r2", "r3", "r4"):
            self.mc.add_user(n)
            names.append(n)
        with Raw(self.port) as c:
            self.assertEqual(c.cmd("EHLO client.example").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<s@remote.example>").code, 250)
            for n in names[:3]:
                self.assertEqual(c.cmd(f"RCPT TO:<{n}@example.test>").code, 250)
            r = c.cmd("RCPT TO:<r4@example.test>")
            self.assertEqual(r.code, 452, r)
            self.assertTrue(r.text.startswith("4.5.3 "), r)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(message("three of four") + b".\r\n")
            self.assertEqual(c.reply().code, 250)
        for n in names[:3]:
            self.assertEqual(len(self.mc.message_list(n)), 1, n)
        self.assertEqual(self.mc.message_list("r4"), [])

    def test_timeout_silent_client_421_4_4_2_within_3_s(self):
        with Raw(self.port, timeout=10) as c:
            t0 = time.monotonic()
            r = c.reply()
            elapsed = time.monotonic() - t0
            self.assertEqual(r.code, 421, r)
            self.assertTrue(r.text.startswith("4.4.2 "), r)
            self.assertGreater(elapsed, 1.5)
            self.assertLess(elapsed, 3.5)
            self.assertTrue(c.closed_by_server())

    def test_timeout_silent_client_inside_data_421_4_4_2(self):
        self.mc.add_user("slow")
        with Raw(self.port, timeout=10) as c:
            self.assertEqual(c.cmd("EHLO client.example").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<s@remote.example>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<slow@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(b"Subject: half\r\n\r\nhalf a message")
            t0 = time.monotonic()
            r = c.reply()
            self.assertEqual(r.code, 421, r)
            self.assertTrue(r.text.startswith("4.4.2 "), r)
            self.assertLess(time.monotonic() - t0, 3.5)
        self.assertEqual(self.mc.message_list("slow"), [])

    def test_session_timeout_busy_client_421_4_4_2(self):
        with Raw(self.port, timeout=10) as c:
            t0 = time.monotonic()
            self.assertEqual(c.cmd("EHLO client.example").code, 250)
            while True:
                r = c.cmd("NOOP")
                if r.code != 250:
                    break
                self.assertLess(time.monotonic() - t0, 14, "session outlived smtpd_session_timeout")
                time.sleep(0.5)
            elapsed = time.monotonic() - t0
            self.assertEqual(r.code, 421, r)
            self.assertTrue(r.text.startswith("4.4.2 "), r)
            self.assertGreater(elapsed, 9)
            self.assertTrue(c.closed_by_server())

    def test_client_connection_limit_fourth_421_4_7_0_then_accepted_after_one_closes(self):
        clients = [Raw(self.port) for _ in range(3)]
        try:
            for c in clients:
                self.assertEqual(c.greeting.code, 220)
                self.assertEqual(c.cmd("EHLO client.example").code, 250)
            with Raw(self.port, greet=False) as fourth:
                r = fourth.reply()
                self.assertEqual(r.code, 421, r)
                self.assertTrue(r.text.startswith("4.7.0 "), r)
                self.assertTrue(fourth.closed_by_server())
            self.assertEqual(clients[0].cmd("QUIT").code, 221)
            self.assertTrue(clients[0].closed_by_server())
            clients[0].close()

            def accepted():
                with Raw(self.port, greet=False) as c:
                    r = c.reply()
                    if r.code == 220:
                        return c.cmd("QUIT").code == 221
                    time.sleep(0.05)
                    return False
            self.assertTrue(wait_for(accepted, 3), "no connection accepted after one closed")
            for c in clients[1:]:
                self.assertEqual(c.cmd("NOOP").code, 250)
        finally:
            for c in clients:
                c.close()


class ConnectionLimitsAcrossWorkers(unittest.TestCase):
    """The limits hold for the service, not per worker process."""

    def setUp(self):
        self.mc = Instance(testd=TESTD, smtpd_client_connection_limit="3",
                           smtpd_connection_limit="5", worker_processes="2")
        self.mc.__enter__()
        self.mc.start()
        self.port = int(self.mc.settings["smtpd_port"])
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        try:
            self.assertEqual(self.mc.stop(), 0)
        finally:
            self.mc.__exit__(None, None, None)

    def connect(self, source="127.0.0.1"):
        c = Raw(self.port, greet=False, source=source)
        self.clients.append(c)
        return c.reply()

    def test_client_connection_limit_holds_across_two_workers(self):
        for i in range(3):
            self.assertEqual(self.connect().code, 220, i)
        for i in range(4):
            r = self.connect()
            self.assertEqual(r.code, 421, f"connection {4 + i} from 127.0.0.1: {r}")
            self.assertTrue(r.text.startswith("4.7.0 "), r)

    def test_client_connection_limit_counts_each_address_and_total_limit_all(self):
        for i in range(3):
            self.assertEqual(self.connect("127.0.0.1").code, 220, i)
        self.assertEqual(self.connect("127.0.0.1").code, 421)
        for i in range(2):
            self.assertEqual(self.connect("127.0.0.2").code, 220, i)
        r = self.connect("127.0.0.3")
        self.assertEqual(r.code, 421, "smtpd_connection_limit = 5 reached")
        self.assertTrue(r.text.startswith("4.7.0 "), r)

    def test_killed_worker_leaves_no_connection_counts_behind(self):
        for i in range(3):
            self.assertEqual(self.connect().code, 220, i)
        old = self.mc.pids_of("smtpd")
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: len(self.mc.pids_of("smtpd")) == 2
                                 and not set(old) & set(self.mc.pids_of("smtpd")), 5),
                        self.mc.read_log())
        for c in self.clients:
            self.assertTrue(c.closed_by_server())
            c.close()
        for i in range(3):
            r = self.connect()
            self.assertEqual(r.code, 220, f"connection {i + 1} after the kill: {r}")
        self.assertEqual(self.connect().code, 421)


class StalledReader(unittest.TestCase):
    """A client that pipelines commands and then stops reading must not keep
    its session (and its connection slot) for ever: the server gives up
    after smtpd_timeout without progress, as Postfix does, and in any case
    at smtpd_session_timeout.  The client's connection limit is 1, so a
    second connection shows whether the first one still holds its slot."""

    def start(self, **settings):
        self.mc = Instance(testd=TESTD, worker_processes="1",
                           smtpd_client_connection_limit="1", **settings)
        self.addCleanup(self.mc.__exit__, None, None, None)
        self.mc.start()
        self.port = int(self.mc.settings["smtpd_port"])

    def stall(self):
        """Pipeline EHLOs (not junk commands) without reading until the
        server stops taking them; returns the time it stopped."""
        c = Raw(self.port)
        self.addCleanup(c.close)
        self.assertEqual(c.cmd("EHLO client.example").code, 250)
        c.sock.settimeout(0.5)
        payload = memoryview(b"EHLO client.example\r\n" * 1_000_000)
        sent = [0, time.monotonic()]

        def sender():
            while sent[0] < len(payload):
                try:
                    sent[0] += c.sock.send(payload[sent[0]:sent[0] + 65536])
                    sent[1] = time.monotonic()
                except socket.timeout:
                    continue
                except OSError:
                    return

        threading.Thread(target=sender, daemon=True).start()
        deadline = time.monotonic() + 30
        while time.monotonic() - sent[1] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertLess(sent[0], len(payload), "the server read 21 MB of EHLO without a stop")
        return sent[1]

    def released_after(self, since, timeout):
        """Seconds from since until a new connection is accepted, or None."""
        while time.monotonic() - since < timeout:
            with Raw(self.port, greet=False) as c:
                if c.reply().code == 220:
                    return time.monotonic() - since
            time.sleep(0.25)
        return None

    def test_client_that_stops_reading_is_dropped_after_smtpd_timeout(self):
        self.start(smtpd_timeout="2s")
        stalled = self.stall()
        elapsed = self.released_after(stalled, 10)
        self.assertIsNotNone(elapsed, "a client that stopped reading still holds its session "
                                      "10 s later (smtpd_timeout = 2s)")
        self.assertLess(elapsed, 5)
        self.assertEqual(self.mc.stop(), 0)

    def test_session_time_limit_ends_a_session_whose_client_stopped_reading(self):
        self.start(smtpd_timeout="60s", smtpd_session_timeout="10s")
        t0 = time.monotonic()
        self.stall()
        elapsed = self.released_after(t0, 18)
        self.assertIsNotNone(elapsed, "session still open 18 s after it began "
                                      "(smtpd_session_timeout = 10s)")
        self.assertEqual(self.mc.stop(), 0)


class Shutdown(unittest.TestCase):
    def setUp(self):
        self.mc = Instance(testd=TESTD)
        self.mc.__enter__()
        self.mc.start()
        self.port = int(self.mc.settings["smtpd_port"])

    def tearDown(self):
        self.mc.__exit__(None, None, None)

    def exit_status(self):
        """Master's exit status after the one SIGTERM the test sent (mc.stop()
        would send another)."""
        self.mc.master.wait(15)
        return self.mc.stop()

    def test_stop_idle_session_gets_421_4_3_2_master_exits_0(self):
        with Raw(self.port) as c:
            self.assertEqual(c.cmd("EHLO client.example").code, 250)
            self.mc.master.send_signal(signal.SIGTERM)
            r = c.reply()
            self.assertEqual(r.code, 421, r)
            self.assertTrue(r.text.startswith("4.3.2 "), r)
            self.assertTrue(c.closed_by_server())
        self.assertEqual(self.exit_status(), 0)

    def test_stop_mid_data_message_finished_and_delivered_then_421(self):
        self.mc.add_user("busy")
        with Raw(self.port) as c:
            self.assertEqual(c.cmd("EHLO client.example").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<s@remote.example>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<busy@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            content = message("during stop", b"first half\r\n")
            c.send(content[:40])
            self.mc.master.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            c.send(content[40:] + b".\r\n")
            r = c.reply()
            self.assertEqual(r.code, 250, r)
            r = c.reply()
            self.assertEqual(r.code, 421, r)
            self.assertTrue(r.text.startswith("4.3.2 "), r)
        self.assertEqual(self.exit_status(), 0)
        msgs = self.mc.messages("busy")
        self.assertEqual(len(msgs), 1)
        self.assertEqual(split_trace(msgs[0])[2], content)


# --- crash safety ----------------------------------------------------------------------------------

class CrashSafety(unittest.TestCase):
    TOTAL, THREADS, KILL_AFTER = 200, 4, 50

    def test_crash_kill9_smtpd_loses_no_acknowledged_message_and_duplicates_none(self):
        with Instance(testd=TESTD) as mc:
            mc.start()
            mc.add_user("crash")
            port = int(mc.settings["smtpd_port"])
            contents = {i: message(f"crash {i:03d}", b"marker crash-%03d\r\n" % i
                                   + b"filler line\r\n" * 40)
                        for i in range(self.TOTAL)}
            acked = {}                  # i -> attempts until 250
            lost = {i: 0 for i in contents}   # end of data sent, no reply
            lock = threading.Lock()
            n_acked = [0]
            deadline = time.monotonic() + 90

            def send(i):
                attempts = 0
                while time.monotonic() < deadline:
                    attempts += 1
                    eod = False
                    s = None
                    try:
                        s = smtplib.SMTP("127.0.0.1", port, local_hostname="crash.example",
                                         timeout=10)
                        s.ehlo()
                        if s.mail("s@remote.example")[0] == 250 \
                                and s.rcpt("crash@example.test")[0] == 250 \
                                and s.docmd("DATA")[0] == 354:
                            s.send(contents[i] + b".\r\n")
                            eod = True
                            if s.getreply()[0] == 250:
                                with lock:
                                    acked[i] = attempts
                                    n_acked[0] += 1
                                return
                            eod = False     # refused: the server said it has no copy
                    except (OSError, smtplib.SMTPException):
                        if eod:
                            with lock:
                                lost[i] += 1
                    finally:
                        if s is not None:
                            try:
                                s.close()
                            except OSError:
                                pass
                    time.sleep(0.05)

            def worker(k):
                for i in range(k, self.TOTAL, self.THREADS):
                    send(i)

            threads = [threading.Thread(target=worker, args=(k,), daemon=True)
                       for k in range(self.THREADS)]
            for t in threads:
                t.start()
            self.assertTrue(wait_for(lambda: n_acked[0] >= self.KILL_AFTER, 60),
                            f"only {n_acked[0]} messages acknowledged")
            victim = mc.pids_of("smtpd")[0]
            os.kill(victim, signal.SIGKILL)
            for t in threads:
                t.join(max(1, deadline - time.monotonic() + 5))
            self.assertFalse(any(t.is_alive() for t in threads), "clients did not finish")
            self.assertTrue(wait_for(lambda: len(mc.pids_of("smtpd")) == 2
                                     and victim not in mc.pids_of("smtpd"), 3),
                            "killed smtpd was not restarted")

            retried = sorted(i for i, n in acked.items() if n > 1)
            sys.stderr.write(f"\n  killed smtpd {victim} after {self.KILL_AFTER} messages: "
                             f"{len(retried)} retried, {sum(lost.values())} replies lost ... ")
            # Every stored message is whole, and is one of ours.
            listed = mc.message_list("crash")
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                stored = list(pool.map(lambda m: mc.message_bytes("crash", "INBOX", m["uid"]),
                                       listed))
            count = {i: 0 for i in contents}
            for raw in stored:
                _, _, rest = split_trace(raw)
                m = re.search(rb"marker crash-(\d{3})\r\n", rest)
                self.assertIsNotNone(m, f"stored message is not one of ours: {raw[:300]!r}")
                i = int(m.group(1))
                self.assertEqual(rest, contents[i], f"message {i} stored incomplete or altered")
                count[i] += 1

            self.assertEqual(sorted(set(contents) - set(acked)), [],
                             "messages never acknowledged although retried for 90 s")
            missing = [i for i in acked if count[i] == 0]
            self.assertEqual(missing, [], "acknowledged messages missing after kill -9")
            dup = {i: count[i] for i in contents if count[i] > 1}
            unexplained = {i: n for i, n in dup.items() if n > 1 + lost[i]}
            self.assertEqual(unexplained, {}, "messages stored twice without a lost reply")
            if dup:
                # Commit done, 250 lost with the process: the client's retry
                # stores a second copy.  Inherent to SMTP (RFC 1047); reported.
                sys.stderr.write(f"\nnote: {len(dup)} message(s) stored twice after a reply "
                                 f"lost in the kill: {sorted(dup)}\n")
            self.assertEqual(mc.stop(), 0)

            # SPEC 8: what the kill left behind (a temp file, a message file
            # without an index entry) is gone after the next start; the
            # mailbox is unchanged.
            mc.start()
            self.assertEqual(mc.message_list("crash"), listed)
            data = mc.settings["data_directory"]
            files = [f for _, _, fs in os.walk(os.path.join(data, "msg")) for f in fs]
            self.assertEqual(len(files), len(listed), "message files without an index entry")
            self.assertEqual(os.listdir(os.path.join(data, "tmp")), [])
            with smtp(port) as s:
                self.assertEqual(s.sendmail("s@remote.example", ["crash@example.test"],
                                            message("after restart")), {})
            self.assertEqual(len(mc.message_list("crash")), len(listed) + 1)
            self.assertEqual(mc.stop(), 0)


if __name__ == "__main__":
    unittest.main()


class UserDeletedMidTransaction(unittest.TestCase):
    def test_recipient_deleted_before_data_end_is_logged_discarded_not_sent(self):
        with Instance(testd=TESTD) as mc:
            mc.add_user("gone")
            mc.add_user("stays")
            mc.start()
            s = smtplib.SMTP("127.0.0.1", int(mc.settings["smtpd_port"]), timeout=20)
            s.ehlo("client.example")
            s.mail("a@remote.example")
            self.assertEqual(s.rcpt("gone@example.test")[0], 250)
            self.assertEqual(s.rcpt("stays@example.test")[0], 250)
            mc.mailctl("user", "del", "gone", check=True)
            code, _ = s.data(b"Subject: late\r\n\r\nbody\r\n")
            self.assertEqual(code, 250)
            s.quit()
            self.assertEqual(len(mc.message_list("stays")), 1)
            log = mc.read_log()
            self.assertRegex(log, r"to=<gone@example\.test>.*status=discarded")
            self.assertNotRegex(log, r"to=<gone@example\.test>.*status=sent")
            self.assertEqual(mc.stop(), 0)
