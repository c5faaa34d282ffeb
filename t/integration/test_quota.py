"""Storage quota: user_quota, `mailctl user quota`, and enforcement as users
and senders see it -- IMAP QUOTA (RFC 9208) figures, NO [OVERQUOTA] for
APPEND and COPY, SMTP 452 4.2.2 at RCPT and at end of data, the mixed
delivery, submitd's Sent copy, and the upgrade of a schema-2 database.

Runs the real smtpd, submitd and imapd (relayq is a testd stand-in).  The
instance's user_quota is 1m; tests give their users their own limits with
mailctl while the daemons run, which is also what shows that a change
applies at once.
"""
import imaplib
import json
import math
import os
import smtplib
import subprocess
import sys
import unittest

from mcfixture import BIN, Instance, wait_for
from smtpraw import Raw

PASSWORD = "secret-pw-1"
ROOT = "User quota"
_n = [0]


def body(size, subject="quota test"):
    head = (f"From: <sender@remote.example>\r\nTo: <x@example.test>\r\n"
            f"Subject: {subject}\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    n = max(0, size - len(head))
    return head + (line * (n // len(line) + 1))[:n]


class QuotaCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mc = Instance(testd=("relayq",), user_quota="1m")
        cls.mc.__enter__()
        try:
            cls.mc.start()
        except BaseException:
            cls.mc.__exit__(*sys.exc_info())
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            status = cls.mc.stop()
        finally:
            cls.mc.__exit__(None, None, None)
        if status != 0:
            raise AssertionError(f"master exit status {status}")

    def setUp(self):
        self.reports_before = self.mc.sanitizer_mark()

    def tearDown(self):
        self.mc.check_sanitizer_since(self.reports_before)

    # --- helpers ----------------------------------------------------------

    def user(self, quota=None):
        _n[0] += 1
        name = f"q{_n[0]}"
        self.mc.add_user(name, PASSWORD)
        if quota is not None:
            self.mc.mailctl("user", "quota", name, quota, check=True)
        return name

    def imap(self, name):
        c = imaplib.IMAP4("127.0.0.1", int(self.mc.settings["imap_port"]), timeout=20)
        self.addCleanup(self._logout, c)
        c.login(name, PASSWORD)
        return c

    @staticmethod
    def _logout(c):
        try:
            c.logout()
        except Exception:
            pass

    def listing(self, name):
        users = json.loads(self.mc.mailctl("user", "list", "--json", check=True).stdout)
        return [u for u in users if u["name"] == name][0]

    def usage(self, name):
        return self.listing(name)["usage"]

    def storage(self, c, mailbox="INBOX"):
        """GETQUOTAROOT: (roots, (used, limit) or None)."""
        typ, data = c.getquotaroot(mailbox)
        self.assertEqual(typ, "OK", data)
        roots, quotas = data
        quota = None
        for q in quotas:
            if q:
                text = q.decode()
                self.assertTrue(text.startswith(f'"{ROOT}" (STORAGE '), text)
                used, limit = text[len(ROOT) + 12:].rstrip(")").split()
                quota = (int(used), int(limit))
        return roots[0].decode(), quota

    def smtp(self):
        c = Raw(int(self.mc.settings["smtpd_port"]))
        self.addCleanup(c.close)
        self.assertEqual(c.greeting.code, 220)
        self.assertEqual(c.cmd("EHLO client.example").code, 250)
        return c

    def deliver(self, rcpts, content, mail_from="MAIL FROM:<sender@remote.example>"):
        """One SMTP transaction: ([RCPT replies], end-of-data reply or None)."""
        c = self.smtp()
        self.assertEqual(c.cmd(mail_from).code, 250)
        replies = [c.cmd(f"RCPT TO:<{r}@example.test>") for r in rcpts]
        if not any(r.code == 250 for r in replies):
            return replies, None
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(content + b"\r\n.\r\n")
        return replies, c.reply()

    def count(self, name, mailbox="INBOX"):
        return len(self.mc.message_list(name, mailbox))

    def assertFull(self, reply):
        self.assertEqual(reply.code, 452, reply)
        self.assertTrue(reply.text.startswith("4.2.2 "), reply)
        self.assertIn("Mailbox full", reply.text)


class Imap(QuotaCase):
    def test_capability_and_figures_follow_delivery_and_expunge(self):
        name = self.user("100k")
        c = self.imap(name)
        caps = c.capabilities
        self.assertIn("QUOTA", caps)
        self.assertIn("QUOTA=RES-STORAGE", caps)
        self.assertEqual(self.storage(c), (f'"INBOX" "{ROOT}"', (0, 100)))

        _, end = self.deliver([name], body(10000))
        self.assertEqual(end.code, 250, end)
        used = self.usage(name)
        self.assertGreater(used, 10000)
        self.assertEqual(self.storage(c), (f'"INBOX" "{ROOT}"', (math.ceil(used / 1024), 100)))
        typ, data = c.getquota(f'"{ROOT}"')
        self.assertEqual((typ, data), ("OK", [f'"{ROOT}" (STORAGE {math.ceil(used / 1024)} 100)'
                                             .encode()]))
        # Any name of the user, even one that does not exist, is under the root.
        self.assertEqual(self.storage(c, "Nonexistent")[1], (math.ceil(used / 1024), 100))

        c.select("INBOX")
        c.store("1", "+FLAGS", "\\Deleted")
        c.expunge()
        self.assertEqual(self.storage(c)[1], (0, 100))
        self.assertEqual(self.usage(name), 0)

    def test_getquota_unknown_root_and_setquota_refused(self):
        name = self.user("100k")
        c = self.imap(name)
        typ, data = c.getquota("other")
        self.assertEqual(typ, "NO", data)
        typ, data = c._simple_command("SETQUOTA", f'"{ROOT}"', "(STORAGE 500)")
        self.assertEqual(typ, "NO", data)
        self.assertIn(b"mailctl user quota", data[0])

    def test_unlimited_user_has_no_quota_root(self):
        name = self.user("unlimited")
        c = self.imap(name)
        self.assertEqual(self.storage(c), ('"INBOX"', None))
        self.assertEqual(c.getquota(f'"{ROOT}"')[0], "NO")

    def test_append_over_quota_refused_nothing_stored(self):
        name = self.user("20k")
        c = self.imap(name)
        typ, data = c.append("INBOX", None, None, body(12000))
        self.assertEqual(typ, "OK", data)
        typ, data = c.append("INBOX", None, None, body(12000))
        self.assertEqual(typ, "NO", data)
        self.assertTrue(data[0].startswith(b"[OVERQUOTA]"), data)
        self.assertEqual(self.count(name), 1)
        # A smaller one still fits.
        typ, data = c.append("INBOX", None, None, body(5000))
        self.assertEqual(typ, "OK", data)
        self.assertEqual(self.count(name), 2)

    def test_copy_over_quota_refused_move_allowed(self):
        name = self.user("20k")
        c = self.imap(name)
        self.assertEqual(c.append("INBOX", None, None, body(12000))[0], "OK")
        c.select("INBOX")
        typ, data = c.copy("1", "Trash")
        self.assertEqual(typ, "NO", data)
        self.assertTrue(data[0].startswith(b"[OVERQUOTA]"), data)
        self.assertEqual(self.count(name, "Trash"), 0)
        self.assertEqual(self.count(name), 1)
        used = self.usage(name)
        # Over quota now (the administrator lowered it): APPEND is refused,
        # but MOVE adds nothing, so mail can still go to Trash and be expunged.
        self.mc.mailctl("user", "quota", name, "10k", check=True)
        self.assertEqual(c.append("INBOX", None, None, body(100))[0], "NO")
        typ, data = c._simple_command("MOVE", "1", "Trash")
        self.assertEqual(typ, "OK", data)
        self.assertEqual(self.count(name), 0)
        self.assertEqual(self.count(name, "Trash"), 1)
        self.assertEqual(self.usage(name), used)
        c.select("Trash")
        c.store("1", "+FLAGS", "\\Deleted")
        c.expunge()
        self.assertEqual(self.usage(name), 0)
        self.assertEqual(c.append("INBOX", None, None, body(100))[0], "OK")


class Smtp(QuotaCase):
    def test_end_of_data_452_when_message_does_not_fit(self):
        name = self.user("10k")
        rcpt, end = self.deliver([name], body(12000))
        self.assertEqual(rcpt[0].code, 250, rcpt)
        self.assertFull(end)
        self.assertEqual(self.count(name), 0)
        # The limit raised with mailctl applies to the running smtpd at once.
        self.mc.mailctl("user", "quota", name, "20k", check=True)
        rcpt, end = self.deliver([name], body(12000))
        self.assertEqual(end.code, 250, end)
        self.assertEqual(self.count(name), 1)

    def test_rcpt_452_when_over_or_declared_size_does_not_fit(self):
        name = self.user("20k")
        self.assertEqual(self.deliver([name], body(12000))[1].code, 250)
        # SIZE= declared at MAIL that would not fit: refused at RCPT.
        rcpt, _ = self.deliver([name], body(100),
                               mail_from="MAIL FROM:<s@remote.example> SIZE=10000")
        self.assertFull(rcpt[0])
        self.assertIn(f"<{name}@example.test>", rcpt[0].text)
        # Over quota: refused at RCPT whatever the size.
        self.mc.mailctl("user", "quota", name, "5k", check=True)
        rcpt, _ = self.deliver([name], body(100))
        self.assertFull(rcpt[0])
        self.assertEqual(self.count(name), 1)
        self.mc.mailctl("user", "quota", name, "unlimited", check=True)
        self.assertEqual(self.deliver([name], body(100000))[1].code, 250)
        self.assertEqual(self.count(name), 2)

    def test_default_quota_applies_until_overridden(self):
        name = self.user()
        self.assertEqual(self.listing(name)["quota"], 1024 * 1024)
        self.assertEqual(self.listing(name)["quota_source"], "default")
        for _ in range(2):
            self.assertEqual(self.deliver([name], body(400000))[1].code, 250)
        self.assertFull(self.deliver([name], body(300000))[1])
        self.mc.mailctl("user", "quota", name, "2m", check=True)
        self.assertEqual(self.deliver([name], body(300000))[1].code, 250)
        self.mc.mailctl("user", "quota", name, "default", check=True)
        self.assertFull(self.deliver([name], body(100))[0][0])

    def test_mixed_recipients(self):
        full, fine = self.user("5k"), self.user("100k")
        self.assertEqual(self.deliver([full], body(4000))[1].code, 250)
        # full is at 4k+ of 5k: a 3k message would take it over, not fine.
        # Both were accepted at RCPT, so both get it (one 250 covers both).
        rcpt, end = self.deliver([full, fine], body(3000))
        self.assertEqual([r.code for r in rcpt], [250, 250])
        self.assertEqual(end.code, 250, end)
        self.assertEqual(self.count(full), 2)
        self.assertEqual(self.count(fine), 1)
        self.assertGreater(self.usage(full), 5 * 1024)
        # Now over: refused at RCPT; the other recipient gets the message.
        rcpt, end = self.deliver([full, fine], body(3000))
        self.assertFull(rcpt[0])
        self.assertEqual(rcpt[1].code, 250)
        self.assertEqual(end.code, 250, end)
        self.assertEqual(self.count(full), 2)
        self.assertEqual(self.count(fine), 2)

    def test_every_recipient_over_at_end_of_data(self):
        a, b = self.user("5k"), self.user("5k")
        rcpt, end = self.deliver([a, b], body(8000))
        self.assertEqual([r.code for r in rcpt], [250, 250])
        self.assertFull(end)
        self.assertEqual((self.count(a), self.count(b)), (0, 0))


class Submission(QuotaCase):
    def submit(self, sender, rcpt, content):
        s = smtplib.SMTP("127.0.0.1", int(self.mc.settings["submission_port"]), timeout=20)
        self.addCleanup(s.close)
        s.ehlo("client.example")
        s.login(sender, PASSWORD)
        msg = (f"From: <{sender}@example.test>\r\nTo: <{rcpt}@example.test>\r\n"
               f"Subject: sent\r\n\r\n").encode() + content
        return s.sendmail(f"{sender}@example.test", [f"{rcpt}@example.test"], msg)

    def test_sent_copy_left_out_when_sender_over_quota(self):
        sender, rcpt = self.user("10k"), self.user()
        self.assertEqual(self.submit(sender, rcpt, b"a" * 2000 + b"\r\n"), {})
        self.assertEqual(self.count(sender, "Sent"), 1)
        self.assertEqual(self.count(rcpt), 1)
        # The next one would not fit in the sender's quota: sent all the same,
        # without the Sent copy.
        self.assertEqual(self.submit(sender, rcpt, b"b" * 9000 + b"\r\n"), {})
        self.assertEqual(self.count(rcpt), 2)
        self.assertEqual(self.count(sender, "Sent"), 1)
        self.assertTrue(wait_for(lambda: "no copy in %s's Sent" % sender in self.mc.read_log()))


class Mailctl(QuotaCase):
    def test_user_quota_errors_and_help(self):
        name = self.user()
        r = self.mc.mailctl("user", "quota", name, "12x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad size '12x'", r.stderr)
        r = self.mc.mailctl("user", "quota", name, "0")
        self.assertEqual(r.returncode, 2)
        r = self.mc.mailctl("user", "quota", name)
        self.assertEqual(r.returncode, 2)
        r = self.mc.mailctl("user", "quota", "nosuchuser", "10m")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no user nosuchuser", r.stderr)
        r = self.mc.mailctl("user", "quota", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("mailctl user quota NAME SIZE|default|unlimited", r.stdout + r.stderr)
        r = self.mc.mailctl("--help")
        self.assertIn("user quota NAME SIZE|default|unlimited", r.stdout + r.stderr)

    def test_user_list_shows_usage_and_quota(self):
        name = self.user("2m")
        r = self.mc.mailctl("user", "quota", name, "2m", check=True)
        self.assertIn(f"quota of {name}: 2097152, 0 bytes used", r.stdout)
        self.assertEqual(self.deliver([name], body(3000))[1].code, 250)
        used = self.usage(name)
        self.assertGreater(used, 3000)
        line = [l for l in self.mc.mailctl("user", "list", check=True).stdout.splitlines()
                if l.startswith(name + " ")][0]
        self.assertTrue(line.endswith(f" usage={used} quota=2097152"), line)
        self.assertEqual(self.listing(name)["quota_source"], "user")
        self.mc.mailctl("user", "quota", name, "default", check=True)
        line = [l for l in self.mc.mailctl("user", "list", check=True).stdout.splitlines()
                if l.startswith(name + " ")][0]
        self.assertTrue(line.endswith(f" usage={used} quota=1048576 (default)"), line)
        self.mc.mailctl("user", "quota", name, "unlimited", check=True)
        self.assertIsNone(self.listing(name)["quota"])


class Upgrade(unittest.TestCase):
    def test_schema_2_database_upgraded_in_place(self):
        with Instance(testd=("relayq", "submitd")) as mc:
            mc.start()
            mc.add_user("olduser", PASSWORD)
            c = Raw(int(mc.settings["smtpd_port"]))
            c.cmd("EHLO x")
            c.cmd("MAIL FROM:<s@remote.example>")
            self.assertEqual(c.cmd("RCPT TO:<olduser@example.test>").code, 250)
            c.cmd("DATA")
            c.send(body(3000) + b"\r\n.\r\n")
            self.assertEqual(c.reply().code, 250)
            c.close()
            self.assertEqual(mc.stop(), 0)
            tool = os.path.join(BIN, "..", "t", "db_v2")
            subprocess.run([tool, mc.settings["data_directory"]], check=True, timeout=30)
            # Before the upgrade a version-2 database has no quotas: the
            # current code upgrades it when master starts.
            mc.start()
            self.assertIn("schema upgraded from version 2", mc.read_log())
            self.assertEqual(len(mc.message_list("olduser")), 1)
            mc.mailctl("user", "quota", "olduser", "4k", check=True)
            i = imaplib.IMAP4("127.0.0.1", int(mc.settings["imap_port"]), timeout=20)
            try:
                i.login("olduser", PASSWORD)
                typ, data = i.getquotaroot("INBOX")
                self.assertEqual(typ, "OK")
                self.assertIn(f'"{ROOT}" (STORAGE 4 4)'.encode(), data[1])
                i.select("INBOX")
                typ, data = i.fetch("1", "(RFC822.SIZE)")
                self.assertEqual(typ, "OK")
            finally:
                i.logout()
            self.assertEqual(mc.stop(), 0)


if __name__ == "__main__":
    unittest.main()
