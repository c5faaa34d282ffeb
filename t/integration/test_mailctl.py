"""mailctl: users, aliases, groups, config, check and help, as an admin sees them.

Changes must reach running daemons at once: testd answers LOGIN from LMDB.
"""
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import unittest

from mcfixture import BIN, CREATOR, IS_ROOT, SRC, Instance


class Users(unittest.TestCase):
    def setUp(self):
        self.mc = Instance()
        self.mc.__enter__()

    def tearDown(self):
        self.mc.__exit__(None, None, None)

    def test_mailctl_user_add_list_and_mailboxes(self):
        r = self.mc.add_user("alice")
        self.assertIn("alice <alice@example.test>", r.stdout)
        self.mc.add_user("Bob.Smith@Other.Example")
        r = self.mc.mailctl("user", "list", check=True)
        self.assertIn("alice <alice@example.test>", r.stdout)
        self.assertIn("bob.smith <bob.smith@other.example>", r.stdout)
        users = json.loads(self.mc.mailctl("user", "list", "--json", check=True).stdout)
        alice = [u for u in users if u["name"] == "alice"][0]
        self.assertEqual(alice["address"], "alice@example.test")
        boxes = {m["name"]: m for m in alice["mailboxes"]}
        self.assertEqual(sorted(boxes), ["Drafts", "INBOX", "Junk", "Sent", "Trash"])
        for name in ("Sent", "Drafts", "Trash", "Junk"):
            self.assertEqual(boxes[name]["special_use"], "\\" + name)
        self.assertNotIn("special_use", boxes["INBOX"])
        self.assertEqual(boxes["INBOX"]["messages"], 0)
        self.assertNotIn("hash", json.dumps(users))

    def test_mailctl_user_errors(self):
        self.mc.add_user("alice")
        r = self.mc.mailctl("user", "add", "alice", "--password-stdin", input="x\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists already", r.stderr)
        for bad in ("a%b@example.test", "\"q\"@example.test", "@example.test", "alice@",
                    "x@-bad.example", "<a@b.c>", "a" * 300 + "@x.test"):
            r = self.mc.mailctl("user", "add", bad, "--password-stdin", input="x\n")
            self.assertEqual(r.returncode, 2, bad)     # malformed: bad usage
            self.assertIn("not a valid", r.stderr.splitlines()[0], bad)
            self.assertIn("usage:\n  mailctl user add NAME|ADDRESS", r.stderr)
        r = self.mc.mailctl("user", "add", "carol", "hunter2", "--password-stdin",
                            input="x\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("never given on the command line", r.stderr)
        r = self.mc.mailctl("user", "add", "carol", input="hunter2\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--password-stdin", r.stderr)
        r = self.mc.mailctl("user", "add", "carol", "--password-stdin", input="\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("empty", r.stderr)
        for size in (512, 600, 5000):   # libcrypt takes 511 bytes at most
            r = self.mc.mailctl("user", "add", "carol", "--password-stdin", input="x" * size + "\n")
            self.assertEqual(r.returncode, 1, size)
            self.assertEqual(r.stderr.strip(), "mailctl: password too long (max 511 bytes)")
        r = self.mc.mailctl("user", "add", "carol", "--password-stdin", input="x" * 511 + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.mc.mailctl("user", "del", "nobody-here")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no user nobody-here", r.stderr)

    def test_mailctl_malformed_argument_is_bad_usage_unknown_one_a_failure(self):
        """Exit status 2 (bad usage) for what no database could make right: a
        malformed address, user or group name, UID, size or queue id, like an
        unknown option; exit 1 with one line for a well-formed name that
        names nothing."""
        self.mc.add_user("alice")
        usage = [("alias", "add", "a b", "alice"), ("alias", "add", "x@example.test", "A b"),
                 ("alias", "del", "a b"), ("group", "add", "bad group"),
                 ("group", "del", "bad group"), ("group", "member", "add", "bad group", "alice"),
                 ("group", "member", "del", "staff", "bad user"),
                 ("user", "add", "a b", "--password-stdin"),
                 ("user", "add", "carol", "--group", "bad group", "--password-stdin"),
                 ("user", "del", "Bad Name"), ("user", "passwd", "a b", "--password-stdin"),
                 ("user", "quota", "a b", "1m"), ("user", "quota", "alice", "12x"),
                 ("message", "list", "a b"), ("message", "cat", "alice", "INBOX", "x"),
                 ("queue", "delete", "../etc"), ("queue", "hold", "a-b"),
                 ("user", "list", "--bogus")]
        for args in usage:
            r = self.mc.mailctl(*args, input="pw\n")
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn("\nusage:\n  mailctl ", r.stderr, args)
        failed = [("user", "del", "nobody"), ("group", "del", "nogroup"),
                  ("group", "member", "add", "nogroup", "alice"),
                  ("alias", "del", "no@example.test"), ("alias", "add", "x@example.test", "bob"),
                  ("message", "cat", "alice", "INBOX", "7"), ("queue", "delete", "NOSUCHID")]
        for args in failed:
            r = self.mc.mailctl(*args)
            self.assertEqual(r.returncode, 1, (args, r.stderr))
            self.assertEqual(len(r.stderr.splitlines()), 1, (args, r.stderr))

    def test_mailctl_unusable_database_is_one_clear_error(self):
        self.mc.add_user("alice")
        path = os.path.join(self.mc.settings["data_directory"], "data.mdb")
        with open(path, "r+b") as f:
            f.write(b"not an lmdb file" * 256)
        for args in (("user", "add", "bob", "--password-stdin"), ("user", "list"),
                     ("user", "del", "alice"), ("alias", "list"), ("group", "list"),
                     ("message", "list", "alice")):
            r = self.mc.mailctl(*args, input="pw\n")
            self.assertEqual(r.returncode, 1, args)
            self.assertRegex(r.stderr, r"^mailctl: .*/data: cannot open the database: .*not an LMDB",
                             args)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, (args, r.stderr))

    def test_mailctl_aliases_and_groups(self):
        self.mc.add_user("alice")
        self.mc.add_user("bob")
        self.mc.mailctl("alias", "add", "Sales@Example.Test", "alice", check=True)
        r = self.mc.mailctl("alias", "list", check=True)
        self.assertEqual(r.stdout, "sales@example.test alice\n")
        r = self.mc.mailctl("alias", "add", "bob@example.test", "alice")
        self.assertEqual(r.returncode, 1)
        self.assertIn("in use already", r.stderr)
        r = self.mc.mailctl("alias", "add", "x@example.test", "nobody")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no user nobody", r.stderr)
        self.mc.mailctl("group", "add", "senders", check=True)
        self.mc.mailctl("group", "member", "add", "senders", "bob", check=True)
        self.assertEqual(self.mc.mailctl("group", "list", check=True).stdout, "senders: bob\n")
        r = self.mc.mailctl("group", "member", "add", "nogroup", "bob")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no group nogroup", r.stderr)
        r = self.mc.add_user("carol", "pw-carol", "--group", "senders")
        self.assertEqual(self.mc.mailctl("group", "list", check=True).stdout,
                         "senders: bob carol\n")
        users = json.loads(self.mc.mailctl("user", "list", "--json", check=True).stdout)
        alice = [u for u in users if u["name"] == "alice"][0]
        self.assertEqual(alice["aliases"], ["sales@example.test"])
        self.mc.mailctl("user", "del", "alice", check=True)
        self.assertEqual(self.mc.mailctl("alias", "list", check=True).stdout, "")
        self.mc.mailctl("group", "member", "del", "senders", "bob", check=True)
        self.mc.mailctl("group", "del", "senders", check=True)
        self.assertEqual(self.mc.mailctl("group", "list", check=True).stdout, "")

    @unittest.skipUnless(IS_ROOT, "needs root")
    def test_mailctl_as_root_leaves_files_owned_by_mail_creator(self):
        self.mc.add_user("alice")
        uid = pwd.getpwnam(CREATOR).pw_uid
        data = self.mc.settings["data_directory"]
        for root, dirs, files in os.walk(data):
            for name in dirs + files:
                path = os.path.join(root, name)
                self.assertEqual(os.stat(path).st_uid, uid, path)
        self.assertTrue(os.path.exists(os.path.join(data, "lock.mdb")))


class LiveChanges(unittest.TestCase):
    def test_mailctl_changes_reach_running_daemons_at_once(self):
        with Instance() as mc:
            mc.start()
            self.assertIn("users=0", mc.testd_line())
            mc.add_user("alice", "first-pw")
            self.assertIn("users=1", mc.testd_line())
            self.assertEqual(mc.testd_line(send="LOGIN alice first-pw")[1], "OK alice")
            self.assertEqual(mc.testd_line(send="LOGIN ALICE@EXAMPLE.TEST first-pw")[1],
                             "OK alice")
            self.assertEqual(mc.testd_line(send="LOGIN alice wrong")[1], "NO")
            mc.mailctl("user", "passwd", "alice", "--password-stdin", input="second-pw\n",
                       check=True)
            self.assertEqual(mc.testd_line(send="LOGIN alice first-pw")[1], "NO")
            self.assertEqual(mc.testd_line(send="LOGIN alice second-pw")[1], "OK alice")
            mc.mailctl("alias", "add", "info@example.test", "alice", check=True)
            self.assertEqual(mc.testd_line(send="LOGIN info@example.test second-pw")[1],
                             "OK alice")
            self.assertEqual(mc.stop(), 0)


class Config(unittest.TestCase):
    def test_mailctl_config_prints_effective_values_and_hides_secrets(self):
        with Instance(mailserver_password="Top-Secret-9") as mc:
            r = mc.mailctl("config", check=True)
            self.assertIn("mailserver_password = (hidden)\n", r.stdout)
            self.assertIn("message_size_limit = 52428800\n", r.stdout)
            self.assertNotIn("Top-Secret-9", r.stdout + r.stderr)
            r = mc.mailctl("config", "-n", check=True)
            self.assertIn("email_domain = example.test\n", r.stdout)
            self.assertNotIn("message_size_limit", r.stdout)
            r = mc.mailctl("config", "smtpd_port", "email_domain", check=True)
            self.assertEqual(r.stdout, f"smtpd_port = {mc.settings['smtpd_port']}\n"
                                       "email_domain = example.test\n")
            r = mc.mailctl("config", "no_such_key")
            self.assertEqual(r.returncode, 1)
            self.assertIn("no_such_key: unknown parameter", r.stderr)

    @unittest.skipUnless(IS_ROOT and shutil.which("unshare"), "needs root and unshare")
    def test_email_domain_default_is_the_host_domain_or_localdomain(self):
        # As Postfix's mydomain: a bare host name gives "localdomain", not
        # the host name itself (users alice@vm).  A private UTS namespace
        # lets the test name the host.
        tmp = self.enterContext(tempfile.TemporaryDirectory())
        conf = os.path.join(tmp, "m.conf")
        with open(conf, "w") as f:
            f.write("submission_ssl_port = 0\nimaps_port = 0\n")
        mailctl = os.path.join(BIN, "mailctl")
        for host, want in (("vm", "localdomain"), ("mail.example.org", "example.org")):
            r = subprocess.run(["unshare", "-u", "sh", "-c",
                                f'hostname "$1" && exec "$2" -c "$3" config email_domain',
                                "sh", host, mailctl, conf], capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stdout), (0, f"email_domain = {want}\n"), r.stderr)

    def test_mailctl_config_doc_matches_readme(self):
        with Instance() as mc:
            doc = mc.mailctl("config", "--doc", check=True).stdout
        with open(os.path.join(SRC, "README.md")) as f:
            readme = f.read()
        self.assertTrue(doc in readme, "README's configuration table is out of date: "
                                       "paste `mailctl config --doc` into it")

    def test_mailctl_check(self):
        with Instance() as mc:
            r = mc.mailctl("check")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("is valid", r.stdout)
            self.assertIn("users, groups and postmaster@example.test are not checked", r.stdout)
            mc.add_user("alice")
            r = mc.mailctl("check")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("postmaster@example.test reaches nobody", r.stdout)
            mc.mailctl("alias", "add", "postmaster@example.test", "alice", check=True)
            self.assertNotIn("postmaster", mc.mailctl("check").stdout)
            mc.write_conf("imap_port = many\n")
            r = mc.mailctl("check")
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, r"mailcore\.conf:\d+: imap_port: 'many' is not a port")

    def test_mailctl_check_warns_of_starttls_ports_without_certificate(self):
        """Without tls_cert_file, submission_port and imap_port offer no
        STARTTLS and only loopback clients can log in: a warning naming the
        port keys, not an error (SPEC 2 asks a certificate only of the
        implicit-TLS ports), so the exit status stays 0."""
        with Instance(tls_cert_file="", tls_key_file="", submission_ssl_port=0, imaps_port=0,
                      listen_address="0.0.0.0") as mc:
            r = mc.mailctl("check")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("is valid", r.stdout)
            for key in ("submission_port", "imap_port"):
                self.assertRegex(r.stdout, rf"(?m)^warning: {key} {mc.settings[key]}: STARTTLS "
                                           r"is not offered without tls_cert_file")
            mc.set(imap_port=0)
            r = mc.mailctl("check")
            self.assertNotIn("imap_port", r.stdout)
            self.assertIn("warning: submission_port", r.stdout)
            mc.set(tls_cert_file=mc.cert, tls_key_file=mc.key)
            self.assertNotIn("STARTTLS", mc.mailctl("check").stdout)

    def test_mailctl_check_relay_acl_group_must_exist(self):
        """relay_acl naming a group the database does not have would refuse
        every submission (550 5.7.1): check says so, naming key and group."""
        with Instance(relay_acl="nosuchgroup") as mc:
            r = mc.mailctl("check")
            self.assertEqual(r.returncode, 0, r.stderr)   # no database: not checked
            self.assertIn("users, groups and postmaster@example.test are not checked", r.stdout)
            mc.add_user("alice")
            r = mc.mailctl("check")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertNotIn("is valid", r.stdout)
            self.assertRegex(r.stderr, r"^mailctl: \S+mailcore\.conf:\d+: relay_acl: group "
                                       r"'nosuchgroup' does not exist: no user may send")
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            mc.mailctl("group", "add", "nosuchgroup", check=True)
            self.assertEqual(mc.mailctl("check").returncode, 0)
            mc.set(relay_acl="published")
            self.assertEqual(mc.mailctl("check").returncode, 0)

    def test_mailctl_check_creates_and_changes_nothing(self):
        """check validates without starting anything (SPEC 2): data_directory
        stays absent on a fresh configuration, an empty one stays empty, and
        an existing database is read without making a file (no msg/, tmp/,
        not even lock.mdb)."""
        with Instance() as mc:
            data = mc.settings["data_directory"]
            r = mc.mailctl("check")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"no database in {data} yet", r.stdout)
            self.assertFalse(os.path.exists(data))
            self.assertFalse(os.path.exists(mc.settings["queue_directory"]))
            os.mkdir(data, 0o750)
            os.chown(data, pwd.getpwnam(CREATOR).pw_uid, pwd.getpwnam(CREATOR).pw_gid)
            self.assertEqual(mc.mailctl("check").returncode, 0)
            self.assertEqual(os.listdir(data), [])
            mc.add_user("alice")
            for name in ("msg", "tmp", "lock.mdb"):
                path = os.path.join(data, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
            r = mc.mailctl("check")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("postmaster@example.test reaches nobody", r.stdout)
            self.assertEqual(os.listdir(data), ["data.mdb"])
    def test_example_config_values_are_valid_as_written(self):
        """etc/mailcore.conf with every '#key = value' line uncommented passes
        `mailctl check`, and `mailctl config` then shows each value as a
        reader of the example takes it: an administrator can uncomment any
        line.  (A comment after a value is part of the value: it made
        smtpd_port '25   # mail from...', and it would quietly turn a path
        into another path, which only the comparison with `config` catches.)

        The example names a production system's places (/etc/mailcore/tls,
        /var/lib/mailcore, /usr/libexec/mailcore, ...).  Instead of replacing
        those values, every absolute path is re-rooted under a scratch
        directory, as a chroot would see it, keeping its text; the test
        creates there what check must find (certificate, key, relay password
        file, daemon binaries) and leaves absent what check only notes as not
        created yet.  mail_creator becomes the account this suite runs the
        daemons as (that is mailcore itself when run as root)."""
        with open(os.path.join(SRC, "etc", "mailcore.conf")) as f:
            example = f.read()
        with Instance() as mc:
            root = os.path.join(mc.dir, "root")
            settings, meant = {}, {}
            for line in example.splitlines():
                m = re.match(r"#?([a-z_]+) =(.*)$", line)
                if m:
                    value = m.group(2).strip()
                    if m.group(1) == "mail_creator":
                        value = CREATOR
                    elif value.startswith("/"):
                        value = root + value
                    settings[m.group(1)] = value
                    meant[m.group(1)] = re.sub(r"\s+#.*", "", value)
            self.assertGreaterEqual(len(settings), 25, "the example lost its keys?")
            self.make_example_files(mc, root, settings)
            path = os.path.join(mc.dir, "example.conf")
            with open(path, "w") as f:
                f.writelines(f"{k} = {v}\n" for k, v in settings.items())
            r = self.mailctl(path, "check")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("is valid", r.stdout)
            r = self.mailctl(path, "config", *settings)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sorted(r.stdout.splitlines()),
                             sorted(f"{k} = {v}" for k, v in meant.items()))

    @staticmethod
    def mailctl(conf, *args):
        return subprocess.run([os.path.join(BIN, "mailctl"), "-c", conf, *args],
                              capture_output=True, text=True, timeout=60)

    @staticmethod
    def make_example_files(mc, root, settings):
        """What check must find at the example's (re-rooted) paths."""
        for key in ("tls_cert_file", "tls_key_file", "mailserver_password_file"):
            os.makedirs(os.path.dirname(settings[key]), exist_ok=True)
        shutil.copy(mc.cert, settings["tls_cert_file"])
        shutil.copy(mc.key, settings["tls_key_file"])
        with open(settings["mailserver_password_file"], "w") as f:
            f.write("relay-secret\n")
        os.makedirs(os.path.dirname(settings["daemon_directory"]), exist_ok=True)
        os.symlink(mc.daemon_dir, settings["daemon_directory"])

    def test_mailctl_help_for_every_command(self):
        with Instance() as mc:
            r = mc.mailctl("--help")
            self.assertEqual(r.returncode, 0)
            commands = re.findall(r"^  mailctl ([a-z ]+?)(?: [A-Z\[-]|$)", r.stdout, re.M)
            self.assertGreaterEqual(len(commands), 17)
            for cmd in commands:
                r = mc.mailctl(*cmd.split(), "--help")
                self.assertEqual(r.returncode, 0, cmd)
                self.assertIn("mailctl " + cmd, r.stdout)
            r = mc.mailctl("frobnicate")
            self.assertEqual(r.returncode, 2)
            self.assertIn("unknown command 'frobnicate'", r.stderr)
            r = mc.mailctl("user", "del")
            self.assertEqual(r.returncode, 2)

    def test_mailctl_unknown_subcommand_is_named(self):
        with Instance() as mc:
            for args, group in ((("user", "bogus"), "user"),
                                (("group", "member", "bogus", "x"), "group member"),
                                (("queue", "bogus"), "queue")):
                r = mc.mailctl(*args)
                self.assertEqual(r.returncode, 2, args)
                self.assertEqual(r.stderr.splitlines()[0],
                                 f"mailctl: unknown subcommand 'bogus' of '{group}'")
                self.assertIn(f"  mailctl {group} ", r.stderr)   # what would fit
                self.assertNotIn("unknown command", r.stderr)
            r = mc.mailctl("group", "member")
            self.assertEqual(r.returncode, 2)
            self.assertIn("'group member' needs a subcommand", r.stderr)
            self.assertIn("mailctl group member add GROUP USER", r.stderr)
            self.assertNotIn("mailctl group list", r.stderr)
            r = mc.mailctl("user", "--help")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("mailctl user add", r.stdout)


if __name__ == "__main__":
    unittest.main()
