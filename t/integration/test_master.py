"""master: privilege separation, restarts, reload, stop, and start-up errors.

Runs the real master with testd standing in for the daemons (so that this
suite tests master itself).  As root, daemons must run as mail_creator with
no capabilities and no_new_privs; as another user, master must say that
it could not drop privileges.
"""
import os
import pwd
import signal
import socket
import time
import unittest

from mcfixture import (CREATOR, IS_ROOT, Instance, pid_alive, proc_status, wait_for)


def connect_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


class RunningMaster(unittest.TestCase):
    def setUp(self):
        self.mc = Instance()
        self.mc.__enter__()
        self.mc.start()

    def tearDown(self):
        self.mc.__exit__(None, None, None)

    def test_master_every_daemon_is_unprivileged(self):
        kids = self.mc.children()
        # A daemon reads its key and opens LMDB as root first: wait until
        # every one is past start-up (no_new_privs set), then look closely.
        wait_for(lambda: all((proc_status(p) or {}).get("NoNewPrivs") == "1" for p in kids), 5)
        self.assertEqual(self.mc.daemon_count(),
                         {"smtpd": 2, "submitd": 2, "imapd": 2, "relayq": 1})
        uid = pwd.getpwnam(CREATOR).pw_uid
        for pid in kids:
            st = proc_status(pid)
            self.assertEqual(st["Uid"].split(), [str(uid)] * 4, f"pid {pid} {st['Name']}")
            self.assertEqual(st["Gid"].split()[0], str(pwd.getpwnam(CREATOR).pw_gid))
            self.assertEqual(st["CapEff"], "0000000000000000")
            self.assertEqual(st["CapPrm"], "0000000000000000")
            self.assertEqual(st["NoNewPrivs"], "1")
            if IS_ROOT:
                self.assertEqual(st["CapBnd"], "0000000000000000")
        if not IS_ROOT:
            self.assertIn("not root", self.mc.read_log())

    def test_master_listeners_reach_their_daemons(self):
        greeting = self.mc.testd_line("smtpd_port")
        self.assertEqual(greeting, "220 testd smtpd smtp email_domain=example.test users=0")
        self.assertIn(" submitd submissions ", self.mc.testd_line("submission_ssl_port"))
        self.assertIn(" imapd imap ", self.mc.testd_line("imap_port"))

    def test_master_restarts_killed_daemon_within_a_second(self):
        # Both smtpd workers exist (READY=1 may come before the last exec).
        old = wait_for(lambda: len(self.mc.pids_of("smtpd")) == 2 and self.mc.pids_of("smtpd"), 3)
        self.assertTrue(old, self.mc.read_log())
        os.kill(old[0], signal.SIGKILL)
        t0 = time.monotonic()
        new = wait_for(lambda: len(self.mc.pids_of("smtpd")) == 2
                       and self.mc.pids_of("smtpd") != old and self.mc.pids_of("smtpd"), 3)
        elapsed = time.monotonic() - t0
        self.assertTrue(new, self.mc.read_log())
        self.assertLess(elapsed, 1.0)
        self.assertNotIn(old[0], new)
        logged = wait_for(lambda: "killed by signal 9" in self.mc.read_log(), 2)
        self.assertTrue(logged, f"old {old}, new {new}:\n{self.mc.read_log()}")
        self.assertTrue(self.mc.testd_line("smtpd_port").startswith("220 testd smtpd"))

    def test_master_sighup_reload_applies_changed_value(self):
        old = set(self.mc.children())
        self.mc.set(email_domain="changed.test")
        self.mc.master.send_signal(signal.SIGHUP)
        ok = wait_for(lambda: "email_domain=changed.test" in self.mc.testd_line(), 5)
        self.assertTrue(ok, self.mc.read_log())
        # The old generation finishes and is not restarted.
        self.assertTrue(wait_for(lambda: not (old & set(self.mc.children())), 5))
        self.assertEqual(sum(self.mc.daemon_count().values()), 7)

    def test_master_reload_with_broken_config_keeps_old(self):
        self.mc.write_conf("this is garbage\n")
        self.mc.master.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "reload failed" in self.mc.read_log(), 5))
        self.assertIn("mailcore.conf:", self.mc.read_log())
        self.assertIsNone(self.mc.master.poll())
        self.assertIn("email_domain=example.test", self.mc.testd_line())
        r = self.mc.mailctl("reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("expected 'key = value'", r.stderr)

    def test_master_restarted_daemon_uses_config_in_force_not_file_being_edited(self):
        self.mc.write_conf("half-edited garbage\n")
        old = self.mc.pids_of("smtpd")
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        ok = wait_for(lambda: len(self.mc.pids_of("smtpd")) == 2
                      and not set(old) & set(self.mc.pids_of("smtpd")), 3)
        self.assertTrue(ok, self.mc.read_log())
        self.assertIn("email_domain=example.test", self.mc.testd_line())

    def test_master_sigterm_stops_everything(self):
        kids = list(self.mc.children())
        pidfile = os.path.join(self.mc.settings["run_directory"], "master.pid")
        self.assertTrue(os.path.exists(pidfile))
        t0 = time.monotonic()
        self.assertEqual(self.mc.stop(), 0)
        self.assertLess(time.monotonic() - t0, 7)
        for pid in kids:
            self.assertFalse(pid_alive(pid), f"daemon {pid} survived")
        self.assertFalse(os.path.exists(pidfile))
        self.assertTrue(connect_refused(int(self.mc.settings["smtpd_port"])))

    def test_mailctl_status_reload_stop(self):
        r = self.mc.mailctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rf"master\s+pid {self.mc.master.pid}")
        for pid, name in self.mc.children().items():
            self.assertRegex(r.stdout, rf"{name}\s+pid {pid}\s+running")
        self.assertEqual(self.mc.mailctl("reload").returncode, 0)
        r = self.mc.mailctl("stop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.mc.master.wait(10), 0)
        r = self.mc.mailctl("status")
        self.assertEqual(r.returncode, 1)
        self.assertIn("master is not running", r.stderr)

    def test_master_second_instance_refused(self):
        r = self.mc.run_master()
        self.assertEqual(r.returncode, 1)
        self.assertIn("master is already running", r.stderr)


class StartupErrors(unittest.TestCase):
    """Each bad start exits 1 with one line saying what to fix, binding nothing."""

    def assertStartFails(self, mc, *needles):
        r = mc.run_master()
        self.assertEqual(r.returncode, 1, r.stderr)
        fatal = [l for l in r.stderr.splitlines() if "fatal:" in l]
        self.assertEqual(len(fatal), 1, r.stderr)
        for n in needles:
            self.assertIn(n, fatal[0])
        self.assertTrue(connect_refused(int(mc.settings["smtpd_port"])))
        self.assertFalse(os.path.exists(os.path.join(mc.settings["run_directory"], "master.pid")))
        return fatal[0]

    def test_master_bad_config_line_names_file_and_line(self):
        with Instance() as mc:
            mc.write_conf("bogus_key = 1\n")
            lines = len(mc.settings) + 2
            self.assertStartFails(mc, f"{mc.conf}:{lines}: bogus_key: unknown parameter")

    def test_master_garbage_config(self):
        with Instance() as mc:
            with open(mc.conf, "ab") as f:
                f.write(b"\x00\x01garbage\n")
            self.assertStartFails(mc, mc.conf, "control character")

    def test_master_overlong_line(self):
        with Instance() as mc:
            mc.write_conf("email_domain = " + "a" * 5000 + "\n")
            self.assertStartFails(mc, "line too long")

    def test_master_missing_certificate(self):
        with Instance() as mc:
            mc.set(tls_cert_file=os.path.join(mc.dir, "missing.pem"))
            self.assertStartFails(mc, "tls_cert_file", "missing.pem: No such file or directory")

    def test_master_broken_certificate(self):
        with Instance() as mc:
            with open(mc.cert, "w") as f:
                f.write("not a certificate\n")
            self.assertStartFails(mc, "tls_cert_file")

    def test_master_missing_daemon_binary(self):
        with Instance() as mc:
            os.unlink(os.path.join(mc.daemon_dir, "imapd"))
            self.assertStartFails(mc, "imapd", "imap_port = 0 and imaps_port = 0")

    def test_master_port_in_use(self):
        with Instance() as mc, socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(mc.settings["imap_port"])))
            s.listen()
            r = mc.run_master()
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"port {mc.settings['imap_port']} (imap_port): Address already in use",
                          r.stderr)

    @unittest.skipUnless(IS_ROOT, "needs root")
    def test_master_nonexistent_mail_creator(self):
        with Instance(mail_creator="no-such-account") as mc:
            self.assertStartFails(mc, "'no-such-account' does not exist")

    @unittest.skipUnless(IS_ROOT, "needs root")
    def test_master_data_directory_wrong_owner(self):
        with Instance() as mc:
            os.mkdir(mc.settings["data_directory"])   # root-owned
            self.assertStartFails(mc, "data_directory", "is owned by uid 0", "chown")


class Minimal(unittest.TestCase):
    def test_master_starts_cleanly_with_every_port_disabled(self):
        with Instance(smtpd_port=0, submission_port=0, submission_ssl_port=0, imap_port=0,
                      imaps_port=0) as mc:
            for name in ("smtpd", "submitd", "imapd", "relayq"):
                os.unlink(os.path.join(mc.daemon_dir, name))
            mc.start()
            self.assertEqual(mc.children(), {})
            r = mc.mailctl("status")
            self.assertEqual(r.returncode, 0)
            self.assertEqual(mc.stop(), 0)

    def test_master_backs_off_a_daemon_that_keeps_dying(self):
        with Instance(smtpd_port=0, submission_port=0, submission_ssl_port=0, imaps_port=0,
                      worker_processes=1) as mc:
            # An imapd that exits at once, every time.
            fake = os.path.join(mc.daemon_dir, "imapd")
            os.unlink(fake)
            with open(fake, "w") as f:
                f.write("#!/bin/sh\nexit 3\n")
            os.chmod(fake, 0o755)
            mc.start(wait_daemons=False)
            time.sleep(2.0)
            log = mc.read_log()
            deaths = log.count("exit status 3")
            self.assertIn("keeps dying", log)
            self.assertGreaterEqual(deaths, 3)
            self.assertLess(deaths, 10, "no back-off")
            self.assertEqual(mc.stop(), 0)


if __name__ == "__main__":
    unittest.main()
