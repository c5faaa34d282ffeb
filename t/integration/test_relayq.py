"""relayq: the outbound queue, its retries and bounces, and mailctl queue / relay test.

Runs the real master, submitd, smtpd, imapd and relayq (no testd), and a test
relay (fakerelay.py) on loopback with a test CA made at run time by the
openssl CLI.  Mail is submitted through submitd (smtplib, AUTH PLAIN on
loopback) to remote addresses; what is checked is what the relay received,
what `mailctl queue list` shows, the DSN in the sender's INBOX (mailctl
message list/cat) and the Postfix-style log lines.  Every wait is bounded;
the relay is started and stopped by each test.
"""
import email
import email.policy
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import tempfile
import threading
import time
import unittest

from fakerelay import FakeRelay, TestCA
from mcfixture import CREATOR, Instance, free_port, proc_status, wait_for

DOMAIN = "example.test"
PW = "alice-pw-1"
RELAY_SECRET = "relay-s3cret-Pa55"
CA = None
TMP = None


def setUpModule():
    global CA, TMP
    TMP = tempfile.mkdtemp(prefix="relayq-ca-")
    os.chmod(TMP, 0o755)
    CA = TestCA(TMP)


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def message(subject, to="bob@remote.example", body="Hello over the relay.\r\n"):
    return (f"From: <alice@{DOMAIN}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@{DOMAIN}>\r\n\r\n{body}").encode()


class RelayqCase(unittest.TestCase):
    relay = None
    mc = None

    def tearDown(self):
        if self.mc is not None:
            mc, self.mc = self.mc, None
            try:
                if mc.master and mc.master.poll() is None:
                    mc.stop()
            finally:
                mc.__exit__(None, None, None)
        if self.relay is not None:
            self.relay.stop()

    def start(self, relay=None, **settings):
        base = {"worker_processes": "1"}
        if relay is not None:
            base.update(mailserver_host="127.0.0.1", mailserver_port=str(relay.port),
                        relay_ca_file=CA.ca_cert)
        base.update(settings)
        base = {k: v for k, v in base.items() if v is not None}
        self.mc = Instance(testd=(), **base)
        self.mc.start()
        self.mc.add_user("alice", PW)
        return self.mc

    def submit(self, subject, rcpts=("bob@remote.example",), content=None):
        port = int(self.mc.settings["submission_port"])
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.login("alice", PW)
            s.sendmail(f"alice@{DOMAIN}", list(rcpts), content or message(subject, rcpts[0]))

    def queue(self):
        r = self.mc.mailctl("queue", "list", "--json", check=True)
        return json.loads(r.stdout)

    def wait_queue_empty(self, timeout=20):
        ok = wait_for(lambda: self.queue() == [], timeout, 0.2)
        self.assertTrue(ok, f"queue not empty: {self.queue()}\n{self.mc.read_log()[-3000:]}")

    def wait_messages(self, n, timeout=20):
        ok = wait_for(lambda: len(self.relay.messages) >= n, timeout, 0.05)
        self.assertTrue(ok, f"relay got {len(self.relay.messages)} of {n}\n"
                            f"{self.mc.read_log()[-3000:]}")

    def wait_reason(self, pattern, timeout=20):
        def check():
            q = self.queue()
            return q if q and re.search(pattern, q[0]["reason"]) else None
        q = wait_for(check, timeout, 0.2)
        self.assertTrue(q, f"no reason like {pattern!r}: {self.queue()}\n"
                           f"{self.mc.read_log()[-3000:]}")
        return q


class TestDelivery(RelayqCase):
    def test_starttls_verified_delivery_exact_message(self):
        self.relay = FakeRelay(CA, "starttls")
        self.start(self.relay)
        content = message("verified starttls")
        self.submit("verified starttls", content=content)
        self.wait_messages(1)
        m = self.relay.messages[0]
        self.assertTrue(m["tls"])
        self.assertEqual(m["sender"], f"alice@{DOMAIN}")
        self.assertEqual(m["rcpts"], ["bob@remote.example"])
        self.assertTrue(m["data"].startswith(b"Received: "), m["data"][:200])
        self.assertTrue(m["data"].endswith(content), m["data"])
        self.wait_queue_empty()
        log = self.mc.read_log()
        self.assertRegex(log, r"relayq\[\d+\]: \w+: to=<bob@remote\.example>, "
                              r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, delay=[\d.]+, "
                              r"delays=[\d.]+/0/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(250 ")
        self.assertRegex(log, r"relayq\[\d+\]: \w+: removed")
        time.sleep(1)
        self.assertEqual(len(self.relay.messages), 1)

    def test_untrusted_certificate_deferred_and_relay_test_names_relay_ca_file(self):
        self.relay = FakeRelay(CA, "starttls")
        self.start(self.relay, relay_ca_file=None)
        self.submit("untrusted")
        q = self.wait_reason(r"certificate verification failed")
        self.assertIn("unable to get local issuer certificate", q[0]["reason"])
        r = self.mc.mailctl("queue", "list", check=True)
        self.assertIn("unable to get local issuer certificate", r.stdout)
        self.assertIn("bob@remote.example", r.stdout)
        self.assertEqual(self.relay.messages, [])
        # Reached, then refused: logged with the relay's name, as Postfix does.
        self.assertRegex(self.mc.read_log(), r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*"
                                             r"status=deferred \(TLS certificate verification")
        r = self.mc.mailctl("relay", "test")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("depth 0: subject=CN=localhost", r.stdout)
        self.assertIn("verify: unable to get local issuer certificate", r.stdout)
        diag = [l for l in r.stdout.splitlines() if l.startswith("diagnosis:")]
        self.assertEqual(len(diag), 1, r.stdout)
        self.assertIn("relay_ca_file", diag[0])

    def test_disable_starttls_sends_in_clear(self):
        self.relay = FakeRelay(CA, "starttls")
        self.start(self.relay, disable_starttls="yes", relay_ca_file=None)
        self.submit("plain please")
        self.wait_messages(1)
        self.assertFalse(self.relay.messages[0]["tls"])
        self.wait_queue_empty()

    def test_force_ssl_implicit_tls(self):
        self.relay = FakeRelay(CA, "tls")
        self.start(self.relay, force_ssl="yes")
        self.submit("implicit tls")
        self.wait_messages(1)
        self.assertTrue(self.relay.messages[0]["tls"])
        self.wait_queue_empty()

    def test_auth_credentials_from_password_file_never_logged(self):
        self.relay = FakeRelay(CA, "starttls", auth=("relayuser", RELAY_SECRET))
        pwfile = os.path.join(TMP, "relay-password")
        with open(pwfile, "w") as f:
            f.write(RELAY_SECRET + "\n")
        os.chmod(pwfile, 0o600)
        self.start(self.relay, mailserver_user="relayuser", mailserver_password_file=pwfile)
        self.submit("with auth")
        self.wait_messages(1)
        self.assertEqual(self.relay.messages[0]["auth"], "relayuser")
        self.assertIn(("relayuser", RELAY_SECRET), self.relay.auth_seen)
        r = self.mc.mailctl("relay", "test")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("auth: ok", r.stdout)
        self.assertNotIn(RELAY_SECRET, r.stdout + r.stderr)
        self.wait_queue_empty()
        self.assertNotIn(RELAY_SECRET, self.mc.read_log())

    def test_temporary_failure_then_flush_delivers_exactly_once(self):
        self.relay = FakeRelay(CA, "starttls")
        self.relay.rcpt_replies["bob@remote.example"] = "451 4.3.0 try again later"
        self.start(self.relay)
        self.submit("retry me")
        q = self.wait_reason(r"451 4\.3\.0 try again later")
        rc = q[0]["recipients"][0]
        self.assertEqual(rc["state"], "pending")
        self.assertEqual(rc["attempts"], 1)
        self.assertRegex(self.mc.read_log(), r"dsn=4\.3\.0, status=deferred \(.*451 4\.3\.0")
        time.sleep(1)
        self.assertEqual(self.relay.messages, [])
        del self.relay.rcpt_replies["bob@remote.example"]
        # Right after a reload the new relayq may not have bound its socket
        # yet: flush waits for it (up to 3 s) rather than fail.  The socket
        # is taken away for a second to make that moment happen.
        sock = os.path.join(self.mc.settings["run_directory"], "private", "relayq.sock")
        os.rename(sock, sock + ".away")
        flush = threading.Thread(target=lambda: self.flushed.append(
            self.mc.mailctl("queue", "flush")))
        self.flushed = []
        flush.start()
        time.sleep(1)
        os.rename(sock + ".away", sock)
        flush.join(10)
        self.assertEqual(self.flushed[0].returncode, 0, self.flushed[0].stderr)
        self.wait_messages(1, timeout=15)
        self.wait_queue_empty()
        time.sleep(1.5)
        self.assertEqual(self.relay.subjects(), ["retry me"])

    def test_permanent_failure_bounces_dsn_into_sender_inbox(self):
        self.relay = FakeRelay(CA, "starttls")
        self.relay.rcpt_replies["nobody@remote.example"] = "550 5.1.1 <nobody@remote.example>: no such user"
        self.start(self.relay)
        self.submit("doomed", rcpts=("nobody@remote.example", "bob@remote.example"),
                    content=message("doomed", "nobody@remote.example"))
        self.wait_messages(1)
        self.assertEqual(self.relay.messages[0]["rcpts"], ["bob@remote.example"])
        inbox = wait_for(lambda: self.mc.message_list("alice"), 20, 0.2)
        self.assertTrue(inbox, self.mc.read_log()[-3000:])
        raw = self.mc.message_bytes("alice", "INBOX", inbox[0]["uid"])
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertIn("MAILER-DAEMON@example.test", msg["From"])
        self.assertIn("Mail Delivery System", msg["From"])
        parts = [p.get_content_type() for p in msg.iter_parts()]
        self.assertEqual(parts, ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        text = raw.decode()
        self.assertIn("Final-Recipient: rfc822; nobody@remote.example", text)
        self.assertNotIn("Final-Recipient: rfc822; bob@remote.example", text)
        self.assertIn("Action: failed", text)
        self.assertIn("Status: 5.1.1", text)
        self.assertIn("Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.example>: no such user",
                      text)
        self.assertIn("Reporting-MTA: dns; ", text)
        self.assertIn("Arrival-Date: ", text)
        self.assertIn("Subject: doomed", text.split("text/rfc822-headers", 1)[1])
        self.wait_queue_empty()
        log = self.mc.read_log()
        self.assertRegex(log, r"to=<nobody@remote\.example>, .*dsn=5\.1\.1, status=bounced")
        self.assertRegex(log, r"\w+: sender non-delivery notification: \w+")

    def test_dsn_does_not_wait_for_deferred_recipient_and_comes_once(self):
        self.relay = FakeRelay(CA, "starttls")
        self.relay.rcpt_replies["nobody@remote.example"] = "550 5.1.1 <nobody@remote.example>: no such user"
        self.relay.rcpt_replies["bob@remote.example"] = "451 4.3.0 try again later"
        self.start(self.relay)
        self.submit("half", rcpts=("nobody@remote.example", "bob@remote.example"),
                    content=message("half", "nobody@remote.example"))
        # The DSN for nobody arrives while bob is still deferred in the queue.
        inbox = wait_for(lambda: self.mc.message_list("alice"), 20, 0.2)
        self.assertTrue(inbox, self.mc.read_log()[-3000:])
        text = self.mc.message_bytes("alice", "INBOX", inbox[0]["uid"]).decode()
        self.assertIn("Final-Recipient: rfc822; nobody@remote.example", text)
        self.assertNotIn("Final-Recipient: rfc822; bob@remote.example", text)
        q = self.queue()
        self.assertEqual([(r["address"], r["state"]) for r in q[0]["recipients"]],
                         [("nobody@remote.example", "bounced"), ("bob@remote.example", "pending")])
        # A crash after the DSN's commit, before the envelope said so: the
        # envelope without its "notified" line.  No second DSN after restart.
        self.assertEqual(self.mc.stop(), 0)
        env = os.path.join(self.mc.settings["queue_directory"], "env", q[0]["id"])
        with open(env) as f:
            lines = f.read().splitlines(keepends=True)
        self.assertIn("notified\n", lines)
        with open(env, "w") as f:
            f.writelines(l for l in lines if l != "notified\n")
        self.mc.start()
        del self.relay.rcpt_replies["bob@remote.example"]
        self.mc.mailctl("queue", "flush", check=True)
        self.wait_messages(1, timeout=20)
        self.wait_queue_empty()
        time.sleep(1.0)
        self.assertEqual(len(self.mc.message_list("alice")), 1, self.mc.read_log()[-3000:])
        self.assertEqual(self.relay.messages[0]["rcpts"], ["bob@remote.example"])
        self.assertRegex(self.mc.read_log(), r"sender non-delivery notification <dsn\.0\.\w+@[^>]+>: "
                                             r"stored before")

    def test_max_queue_lifetime_bounces_when_relay_is_down(self):
        port = free_port()              # nothing listens there
        self.start(None, mailserver_host="127.0.0.1", mailserver_port=str(port),
                   max_queue_lifetime="3s")
        self.submit("expires")
        inbox = wait_for(lambda: self.mc.message_list("alice"), 25, 0.3)
        self.assertTrue(inbox, f"{self.queue()}\n{self.mc.read_log()[-3000:]}")
        text = self.mc.message_bytes("alice", "INBOX", inbox[0]["uid"]).decode()
        self.assertIn("multipart/report", text)
        self.assertIn("Final-Recipient: rfc822; bob@remote.example", text)
        self.assertIn("Status: 4.4.7", text)
        self.assertIn("expired", text)
        self.wait_queue_empty()
        self.assertRegex(self.mc.read_log(), r"to=<bob@remote\.example>, .*status=bounced")

    def test_null_sender_is_never_bounced(self):
        # submitd never queues <> (a user sends as an address they own), so the
        # entry is put into the queue directly, the way queue_put() writes it.
        self.relay = FakeRelay(CA, "starttls")
        self.relay.rcpt_replies["nobody@remote.example"] = "550 5.1.1 no such user"
        self.start(self.relay)
        qdir, qid = self.mc.settings["queue_directory"], "0000NULLSENDER"
        pw = pwd.getpwnam(CREATOR)
        now = int(time.time())
        msg, tmp, env = (os.path.join(qdir, "msg", qid), os.path.join(qdir, "env", "." + qid),
                         os.path.join(qdir, "env", qid))
        with open(msg, "wb") as f:
            f.write(message("null", "nobody@remote.example"))
        with open(tmp, "w") as f:
            f.write(f"mailcore-queue 1\nid {qid}\ncreated {now}\nsender \nuser alice\n"
                    f"rcpt pending 0 {now} nobody@remote.example\n")
        for p in (msg, tmp):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        os.rename(tmp, env)
        self.mc.mailctl("queue", "flush", check=True)
        ok = wait_for(lambda: f"{qid}: not bouncing a bounce" in self.mc.read_log(), 20, 0.2)
        self.assertTrue(ok, self.mc.read_log()[-3000:])
        self.wait_queue_empty()
        self.assertRegex(self.mc.read_log(), rf"{qid}: to=<nobody@remote\.example>, .*"
                                             rf"status=bounced")
        self.assertEqual(self.mc.message_list("alice"), [])


class TestCrash(RelayqCase):
    def test_kill9_and_restart_mid_queue_deliver_each_message_once(self):
        self.relay = FakeRelay(CA, "starttls")
        self.relay.dot_delay = 0.25
        self.start(self.relay)
        n = 20
        for i in range(n):
            self.submit(f"crash {i:02d}")
        kills = []
        self.wait_messages(3, timeout=30)
        pid = self.mc.pids_of("relayq")[0]
        children = lambda: [p for p in os.listdir("/proc") if p.isdigit()
                            and (proc_status(int(p)) or {}).get("PPid") == str(pid)]
        workers = wait_for(children, 10, 0.01)     # kill while a delivery is in flight
        kills.append(time.time())
        os.kill(pid, signal.SIGKILL)
        ok = wait_for(lambda: [p for p in self.mc.pids_of("relayq") if p != pid], 15, 0.05)
        self.assertTrue(ok, "master did not restart relayq")
        self.assertTrue(workers, "no delivery worker was running at the kill")
        self.wait_messages(8, timeout=40)
        kills.append(time.time())
        self.assertEqual(self.mc.stop(), 0)
        self.mc.start()
        ok = wait_for(lambda: len(set(self.relay.subjects())) >= n, 90, 0.2)
        self.assertTrue(ok, f"{sorted(set(self.relay.subjects()))}\n{self.queue()}\n"
                            f"{self.mc.read_log()[-4000:]}")
        self.wait_queue_empty(30)
        time.sleep(1.5)
        subjects = self.relay.subjects()
        self.assertEqual(sorted(set(subjects)), [f"crash {i:02d}" for i in range(n)])
        dups = sorted({s for s in subjects if subjects.count(s) > 1})
        for s in dups:
            first = min(m["time"] for m in self.relay.messages
                        if f"Subject: {s}".encode() in m["data"])
            near = any(0 <= k - first < 2.0 for k in kills)
            self.assertTrue(near, f"{s} delivered twice, not around a kill")
        if dups:
            print(f"\n  duplicates around a kill (250 just before it): {dups}")


    def test_start_up_sweeps_crash_debris_and_keeps_entries(self):
        # A submitd killed between staging and publishing leaves env/.QID.tmp
        # and msg/QID; relayq removes them at start-up once they are old
        # enough, never a young one (a commit in flight) nor a real entry.
        self.start(None)
        self.submit("kept")
        self.assertTrue(wait_for(lambda: len(self.queue()) == 1, 20, 0.2), self.queue())
        self.assertEqual(self.mc.stop(), 0)
        qdir = self.mc.settings["queue_directory"]
        old = time.time() - 3600
        debris = [os.path.join(qdir, "env", ".OLDSTAGED.tmp"),
                  os.path.join(qdir, "msg", "OLDSTAGED"), os.path.join(qdir, "msg", "OLDORPHAN")]
        young = [os.path.join(qdir, "env", ".YOUNG.tmp"), os.path.join(qdir, "msg", "YOUNG")]
        for path in debris + young:
            with open(path, "w") as f:
                f.write("x\n")
        for path in debris:
            os.utime(path, (old, old))
        self.mc.start()
        self.assertTrue(wait_for(lambda: not any(os.path.exists(p) for p in debris), 20, 0.1),
                        f"debris left: {[p for p in debris if os.path.exists(p)]}")
        self.assertTrue(all(os.path.exists(p) for p in young), "a young staged entry was removed")
        self.assertEqual([e["recipients"][0]["address"] for e in self.queue()],
                         ["bob@remote.example"])
        self.assertIn("removed 3 files a crash left in", self.mc.read_log())


class TestQueueCommands(RelayqCase):
    def test_no_relay_list_json_hold_release_delete(self):
        self.start(None)                # mailserver_host empty
        self.submit("first")
        self.submit("second", rcpts=("carol@remote.example", "dave@remote.example"),
                    content=message("second", "carol@remote.example"))
        ok = wait_for(lambda: len(self.queue()) == 2 and all(
            e["reason"] == "no relay configured: set mailserver_host" for e in self.queue()),
            20, 0.2)
        self.assertTrue(ok, f"{self.queue()}\n{self.mc.read_log()[-2000:]}")
        q = self.queue()
        self.assertEqual([e["sender"] for e in q], [f"alice@{DOMAIN}"] * 2)
        # Both may have arrived in the same second: tell them by their recipients.
        by_rcpts = {tuple(r["address"] for r in e["recipients"]): e for e in q}
        self.assertEqual(set(by_rcpts), {("bob@remote.example",),
                                         ("carol@remote.example", "dave@remote.example")})
        e1, e2 = by_rcpts[("bob@remote.example",)], by_rcpts[("carol@remote.example",
                                                              "dave@remote.example")]
        first, second = e1["id"], e2["id"]
        self.assertEqual(e1["recipients"][0]["attempts"], 0)
        self.assertEqual(e1["recipients"][0]["state"], "pending")
        self.assertFalse(e1["held"])
        r = self.mc.mailctl("queue", "list", check=True)
        lines = r.stdout.splitlines()
        self.assertTrue(any(re.match(rf"{first}\s+\d+ \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d\s+"
                                     rf"alice@{DOMAIN}$", l) for l in lines), r.stdout)
        self.assertIn("(no relay configured: set mailserver_host)", r.stdout)
        self.assertTrue(any(l.startswith(" ") and l.strip() == "dave@remote.example"
                            for l in lines), r.stdout)
        self.assertRegex(lines[-1], r"^-- \d+ Kbytes in 2 Requests\.$")

        self.mc.mailctl("queue", "hold", first, check=True)
        r = self.mc.mailctl("queue", "list", check=True)
        self.assertRegex(r.stdout, rf"(?m)^{first}!")
        self.assertTrue([e for e in self.queue() if e["id"] == first][0]["held"])
        self.mc.mailctl("queue", "release", first, check=True)
        r = self.mc.mailctl("queue", "list", check=True)
        self.assertNotRegex(r.stdout, rf"(?m)^{first}!")

        r = self.mc.mailctl("queue", "delete", "NOSUCHID")
        self.assertEqual(r.returncode, 1)
        r = self.mc.mailctl("queue", "delete", "../etc")
        self.assertEqual(r.returncode, 2)           # not a queue id: bad usage
        self.mc.mailctl("queue", "delete", first, check=True)
        self.assertEqual([e["id"] for e in self.queue()], [second])
        self.mc.mailctl("queue", "delete", "all", check=True)
        self.assertEqual(self.queue(), [])
        r = self.mc.mailctl("queue", "list", check=True)
        self.assertIn("Mail queue is empty", r.stdout)
        qdir = self.mc.settings["queue_directory"]
        self.assertEqual(os.listdir(os.path.join(qdir, "msg")), [])
        self.assertEqual(self.mc.mailctl("queue", "flush").returncode, 0)
        r = self.mc.mailctl("--help")
        for cmd in ("queue list", "queue flush", "queue delete", "queue hold", "queue release",
                    "relay test"):
            self.assertIn(f"mailctl {cmd}", r.stdout)

    def test_hold_keeps_message_from_relay_until_release(self):
        self.relay = FakeRelay(CA, "starttls")
        self.relay.rcpt_replies["bob@remote.example"] = "451 4.3.0 later"
        self.start(self.relay)
        self.submit("held one")
        q = self.wait_reason("451")
        qid = q[0]["id"]
        self.mc.mailctl("queue", "hold", qid, check=True)
        del self.relay.rcpt_replies["bob@remote.example"]
        self.mc.mailctl("queue", "flush", check=True)
        time.sleep(2)
        self.assertEqual(self.relay.messages, [])
        self.mc.mailctl("queue", "release", qid, check=True)
        self.wait_messages(1, timeout=15)
        self.wait_queue_empty()


class TestRelayTest(RelayqCase):
    def test_good_relay_shows_chain_verify_ok_and_sends_test_message(self):
        self.relay = FakeRelay(CA, "starttls")
        self.start(self.relay)
        r = self.mc.mailctl("relay", "test")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("-> EHLO", out)
        self.assertIn("<- 250", out)
        self.assertIn("STARTTLS", out)
        self.assertRegex(out, r"tls: TLSv1\.[23]")
        self.assertIn("depth 0: subject=CN=localhost", out)
        self.assertIn("Test Relay CA", out)
        self.assertIn("verify: ok", out)
        self.assertRegex(out, r"(?m)^diagnosis: ok")
        r = self.mc.mailctl("relay", "test", "someone@remote.example")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.wait_messages(1)
        m = self.relay.messages[0]
        self.assertEqual(m["sender"], f"postmaster@{DOMAIN}")
        self.assertEqual(m["rcpts"], ["someone@remote.example"])

    def test_nothing_listening_exit_1_with_diagnosis(self):
        port = free_port()
        self.start(None, mailserver_host="127.0.0.1", mailserver_port=str(port))
        r = self.mc.mailctl("relay", "test")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        diag = [l for l in r.stdout.splitlines() if l.startswith("diagnosis:")]
        self.assertEqual(len(diag), 1, r.stdout)
        self.assertRegex(diag[0], r"mailserver_(host|port)")

    def test_refused_test_message_exit_1(self):
        self.relay = FakeRelay(CA, "starttls")
        self.relay.rcpt_replies["bad@remote.example"] = "550 5.1.1 no such user"
        self.start(self.relay)
        r = self.mc.mailctl("relay", "test", "bad@remote.example")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^diagnosis: .*550 5\.1\.1")


if __name__ == "__main__":
    unittest.main()
