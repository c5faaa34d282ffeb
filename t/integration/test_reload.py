"""Reload and stop with the real daemons: what open sessions see.

`mailctl reload` (SIGHUP) starts a new generation of daemons and tells the
old one to drain: no new connections, the open sessions go on (an SMTP
transaction begun before the reload is delivered, an IMAP session keeps its
selected mailbox and hears of new mail), and each old process exits when its
last session ends.  One still busy after shutdown_timeout is asked to stop
like on `mailctl stop` (IMAP: BYE; SMTP: 421).  A stop lets a command in
progress finish first: an APPEND whose literal is on its way is stored and
answered, then BYE.  A daemon killed in a loop is restarted within a second
every time (SPEC 8).
"""
import imaplib
import os
import signal
import smtplib
import socket
import time
import unittest

from mcfixture import Instance, wait_for

PASSWORD = "reload-pw-1"
MESSAGE = (b"From: <a@remote.example>\r\nTo: <alice@example.test>\r\n"
           b"Subject: across a reload\r\n\r\nbody\r\n")


class ReloadKeepsSessions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mc = Instance(testd=(), shutdown_timeout="4s", worker_processes="1")
        cls.mc.start()
        cls.mc.add_user("alice", PASSWORD)
        cls.smtp_port = int(cls.mc.settings["smtpd_port"])
        cls.imap_port = int(cls.mc.settings["imap_port"])

    @classmethod
    def tearDownClass(cls):
        cls.mc.__exit__(None, None, None)

    def setUp(self):
        self.reports_before = self.mc.sanitizer_mark()

    def tearDown(self):
        self.mc.check_sanitizer_since(self.reports_before)

    def imap(self):
        c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        self.addCleanup(self.close_imap, c)
        c.login("alice", PASSWORD)
        self.assertEqual(c.select("INBOX")[0], "OK")
        return c

    @staticmethod
    def close_imap(c):
        """Log out (or drop a connection the server ended); once only."""
        if getattr(c, "closed_by_test", False):
            return
        c.closed_by_test = True
        try:
            c.logout()
        except (imaplib.IMAP4.abort, OSError):
            try:
                c.shutdown()
            except OSError:
                pass

    def reload(self):
        """Reload; returns the old generation's imapd and smtpd pids once the
        new generation's are up."""
        old = set(self.mc.pids_of("imapd") + self.mc.pids_of("smtpd"))
        self.assertEqual(self.mc.mailctl("reload").returncode, 0)
        up = wait_for(lambda: len(set(self.mc.pids_of("imapd")) - old) == 1 and
                      len(set(self.mc.pids_of("smtpd")) - old) == 1, 5)
        self.assertTrue(up, self.mc.read_log())
        return old

    def messages(self, c):
        typ, data = c.noop()
        self.assertEqual(typ, "OK")
        typ, data = c.search(None, "ALL")
        return len(data[0].split())

    def test_open_smtp_transaction_and_imap_session_survive_reload(self):
        c = self.imap()
        before = self.messages(c)
        s = smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10)
        self.addCleanup(s.close)
        s.ehlo("client.example")
        self.assertEqual(s.mail("a@remote.example")[0], 250)
        self.assertEqual(s.rcpt("alice@example.test")[0], 250)
        old = self.reload()
        # The transaction begun before the reload goes on and is delivered.
        self.assertEqual(s.data(MESSAGE)[0], 250)
        s.quit()
        # The IMAP session is still selected and hears of it.
        self.assertTrue(wait_for(lambda: self.messages(c) == before + 1, 5))
        # New connections reach the new generation.
        n = smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10)
        n.sendmail("a@remote.example", ["alice@example.test"], MESSAGE)
        n.quit()
        self.assertTrue(wait_for(lambda: self.messages(c) == before + 2, 5))
        # The old processes exit once their sessions are gone.
        self.close_imap(c)
        gone = wait_for(lambda: not old & set(self.mc.pids_of("imapd") +
                                              self.mc.pids_of("smtpd")), 3)
        self.assertTrue(gone, f"old generation {old} still running\n" + self.mc.read_log())

    def test_session_still_open_after_shutdown_timeout_is_ended(self):
        c = self.imap()
        old = self.reload()
        time.sleep(1)
        self.assertEqual(c.noop()[0], "OK", "drained, not dropped, right after the reload")
        t0 = time.monotonic()
        ended = wait_for(lambda: not old & set(self.mc.pids_of("imapd")), 8)
        self.assertTrue(ended, self.mc.read_log())
        self.assertGreater(time.monotonic() - t0, 1.5, "ended before shutdown_timeout (4s)")
        with self.assertRaises((imaplib.IMAP4.abort, OSError)):
            c.noop()
            c.noop()

    def test_mailctl_status_shows_draining_old_generation(self):
        c = self.imap()
        old = self.reload()
        r = self.mc.mailctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rf"imapd\s+pid ({'|'.join(map(str, old))})\s+draining")
        self.close_imap(c)


class StopFinishesCommands(unittest.TestCase):
    def test_append_in_progress_is_stored_and_answered_before_bye(self):
        mc = Instance(testd=(), shutdown_timeout="10s", worker_processes="1")
        self.addCleanup(mc.__exit__, None, None, None)
        mc.start()
        mc.add_user("alice", PASSWORD)
        c = socket.create_connection(("127.0.0.1", int(mc.settings["imap_port"])), timeout=10)
        self.addCleanup(c.close)
        f = c.makefile("rb")
        self.assertTrue(f.readline().startswith(b"* OK"))
        c.sendall(f"a LOGIN alice {PASSWORD}\r\n".encode())
        while not f.readline().startswith(b"a OK"):
            pass
        c.sendall(b"b APPEND INBOX {%d}\r\n" % len(MESSAGE))
        self.assertTrue(f.readline().startswith(b"+"))
        c.sendall(MESSAGE[:20])
        mc.master.send_signal(signal.SIGTERM)
        time.sleep(0.5)                 # the stop reaches imapd mid-literal
        c.sendall(MESSAGE[20:] + b"\r\n")
        lines = [f.readline(), f.readline()]
        self.assertTrue(lines[0].startswith(b"b OK [APPENDUID"), lines)
        self.assertTrue(lines[1].startswith(b"* BYE"), lines)
        self.assertEqual(mc.master.wait(15), 0)


class RestartWithinASecond(unittest.TestCase):
    def test_daemon_killed_again_and_again_is_back_within_a_second_each_time(self):
        mc = Instance(worker_processes="1")
        self.addCleanup(mc.__exit__, None, None, None)
        mc.start()
        for i in range(7):
            pids = wait_for(lambda: mc.pids_of("smtpd"), 3)
            self.assertTrue(pids, mc.read_log())
            os.kill(pids[0], signal.SIGKILL)
            t0 = time.monotonic()
            back = wait_for(lambda: mc.pids_of("smtpd") and mc.pids_of("smtpd") != pids, 3)
            self.assertTrue(back, mc.read_log())
            # Within a second (SPEC 8), plus room for a loaded machine; the
            # old back-off took 1.6 s at the 6th kill and 3.2 s at the 7th.
            self.assertLess(time.monotonic() - t0, 1.5, f"kill {i + 1}:\n{mc.read_log()}")


if __name__ == "__main__":
    unittest.main()
