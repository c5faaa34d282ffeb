"""imapd CONDSTORE and QRESYNC (RFC 7162), as a client sees them.

Runs on test_imapd's shared instance (real smtpd and imapd) with users of its
own; every test fills a fresh INBOX by APPEND, so UIDs are 1..n.  What is
checked is the exact untagged and tagged responses over a raw socket:
capabilities, ENABLE, SELECT/EXAMINE (CONDSTORE) and (QRESYNC ...), STATUS
HIGHESTMODSEQ, FETCH MODSEQ and (CHANGEDSINCE n [VANISHED]), STORE
(UNCHANGEDSINCE n) and [MODIFIED], SEARCH MODSEQ, the MODSEQ that untagged
FETCHes carry once CONDSTORE is on, VANISHED instead of EXPUNGE once QRESYNC
is enabled (also to an IDLE session), and [CLOSED].  Two sessions of one
user show the cross-session cases: flags changed in one are seen with
MODSEQ in the other, a conditional STORE loses against the other's change,
and QRESYNC resynchronises after the other's expunges and flag changes.

mailcore keeps no record of expunged UIDs: VANISHED (EARLIER) names every
UID of the client's set below UIDNEXT that no message has (README, RFC 7162
3.2.5); the tests below pin that down, including UIDs expunged before the
client's modseq.
"""
import re
import unittest

from test_imapd import Imap, ImapCase, message, tearDownModule  # noqa: F401


def modseq_of(items):
    """The number in a FETCH MODSEQ item ([n] after parsing)."""
    value = items["MODSEQ"]
    return int(value[0] if isinstance(value, list) else value)


class CondstoreCase(ImapCase):
    def setUp(self):
        super().setUp()
        self.name, _ = self.new_user("cs")
        c = self.connect(login=self.name)
        for n in range(1, 7):
            m = message(f"m{n}")
            c.ok(f"APPEND INBOX {{{len(m)}+}}\r\n".encode() + m)
        c.ok("SELECT INBOX")                # \Recent claimed here, not in the tests

    def session(self, enable=None, select="INBOX"):
        c = self.connect(login=self.name)
        if enable:
            c.ok(f"ENABLE {enable}")
        if select:
            c.ok(f"SELECT {select}")
        return c

    def hms(self, c=None):
        """STATUS INBOX (HIGHESTMODSEQ UIDVALIDITY): (highestmodseq, uidvalidity)."""
        c = c or self.connect(login=self.name)
        line = c.ok("STATUS INBOX (HIGHESTMODSEQ UIDVALIDITY)").matching("^STATUS ")[0]
        hms = int(re.search(r"HIGHESTMODSEQ (\d+)", line).group(1))
        return hms, int(re.search(r"UIDVALIDITY (\d+)", line).group(1))

    def modseqs(self, c):
        """{uid: modseq} of every message, by UID FETCH."""
        r = c.ok("UID FETCH 1:* (MODSEQ)")
        return {int(i["UID"]): modseq_of(i) for _, i in r.fetches()}

    def change(self, store=(), expunge=()):
        """In another session: +FLAGS (\\Flagged) on uids store, then the uids
        expunge marked \\Deleted and UID EXPUNGEd."""
        c = self.session()
        for uid in store:
            c.ok(f"UID STORE {uid} +FLAGS (\\Flagged)")
        if expunge:
            uids = ",".join(str(u) for u in expunge)
            c.ok(f"UID STORE {uids} +FLAGS.SILENT (\\Deleted)")
            c.ok(f"UID EXPUNGE {uids}")
        c.close()


class Condstore(CondstoreCase):
    def test_capabilities_announce_condstore_and_qresync(self):
        caps = self.session(select=None).ok("CAPABILITY").matching("^CAPABILITY ")[0].split()
        self.assertIn("CONDSTORE", caps)
        self.assertIn("QRESYNC", caps)

    def test_enable_answers_enabled_once(self):
        c = self.session(select=None)
        self.assertEqual(c.ok("ENABLE CONDSTORE").lines(), ["ENABLED CONDSTORE"])
        self.assertEqual(c.ok("ENABLE CONDSTORE").lines(), ["ENABLED"])
        self.assertEqual(c.ok("ENABLE QRESYNC").lines(), ["ENABLED QRESYNC"])
        c2 = self.session(select=None)
        self.assertEqual(c2.ok("ENABLE QRESYNC CONDSTORE").lines(), ["ENABLED QRESYNC"])

    def test_select_condstore_gives_highestmodseq_of_status(self):
        hms, _ = self.hms()
        c = self.connect(login=self.name)
        for cmd in ("SELECT INBOX (CONDSTORE)", "EXAMINE INBOX (CONDSTORE)"):
            r = c.ok(cmd)
            self.assertIn(f"OK [HIGHESTMODSEQ {hms}] Highest", r.lines())

    def test_store_raises_highestmodseq_and_the_message_modseq(self):
        before, _ = self.hms()
        c = self.session()
        self.assertEqual(c.ok("STORE 2 +FLAGS (\\Seen)").fetches()[0][0], 2)
        after, _ = self.hms()
        self.assertGreater(after, before)
        ms = self.modseqs(c)
        self.assertEqual(ms[2], after)
        self.assertTrue(all(ms[u] <= before for u in ms if u != 2), ms)

    def test_fetch_modseq_item(self):
        c = self.session()
        r = c.ok("FETCH 1:3 (MODSEQ)")
        self.assertEqual([seq for seq, _ in r.fetches()], [1, 2, 3])
        for line in r.lines():
            self.assertRegex(line, r"^\d FETCH \(MODSEQ \(\d+\)\)$")

    def test_fetch_changedsince_gives_only_changed_messages_with_modseq(self):
        hms, _ = self.hms()
        self.change(store=(2, 4))
        c = self.session()
        r = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % hms)
        got = {seq: i for seq, i in r.fetches()}
        self.assertEqual(sorted(got), [2, 4])
        for seq in (2, 4):
            self.assertEqual(got[seq]["FLAGS"], ["\\Flagged"])
            self.assertGreater(modseq_of(got[seq]), hms)
        r = c.ok("UID FETCH 1:3 (FLAGS) (CHANGEDSINCE %d)" % hms)
        self.assertEqual(len(r.lines()), 1, r)
        self.assertRegex(r.lines()[0], r"^2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$")
        self.assertEqual(c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % self.hms()[0]).lines(), [])

    def test_other_sessions_flag_change_arrives_with_modseq_once_enabled(self):
        a = self.session(enable="CONDSTORE")
        plain = self.session()
        self.change(store=(3,))
        ms = self.modseqs(self.session())[3]
        self.assertEqual(a.ok("NOOP").lines(), [f"3 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ ({ms}))"])
        self.assertEqual(plain.ok("NOOP").lines(), ["3 FETCH (UID 3 FLAGS (\\Flagged))"])

    def test_fetch_modseq_is_a_condstore_enabling_command(self):
        a = self.session()
        a.ok("FETCH 1 (MODSEQ)")
        self.change(store=(5,))
        self.assertRegex(a.ok("NOOP").lines()[0],
                         r"^5 FETCH \(UID 5 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$")

    def test_store_replies_carry_uid_and_modseq_even_silent(self):
        c = self.session(enable="CONDSTORE")
        r = c.ok("STORE 1 +FLAGS (\\Seen)")
        ms = self.modseqs(c)
        self.assertEqual(r.lines(), [f"1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ({ms[1]}))"])
        r = c.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
        ms = self.modseqs(c)
        self.assertEqual(r.lines(), [f"2 FETCH (UID 2 MODSEQ ({ms[2]}))"])

    def test_implicit_seen_fetch_carries_uid_and_modseq(self):
        c = self.session(enable="CONDSTORE")
        r = c.ok("FETCH 1 (RFC822.SIZE BODY[TEXT])")
        items = r.fetches()[0][1]
        self.assertEqual(items["FLAGS"], ["\\Seen"])
        self.assertEqual(int(items["UID"]), 1)
        self.assertEqual(modseq_of(items), self.modseqs(c)[1])

    def test_store_unchangedsince_conflict_gives_modified(self):
        a = self.session()
        ms = self.modseqs(a)
        since = max(ms[1], ms[2], ms[3])
        self.change(store=(2,))             # another session gets there first
        r = a.cmd(f"STORE 1:3 (UNCHANGEDSINCE {since}) +FLAGS (\\Answered)")
        self.assertEqual((r.status, r.code), ("OK", "MODIFIED 2"), r)
        stored = [l for l in r.lines() if "\\Answered" in l]
        self.assertEqual(len(stored), 2, r)
        self.assertRegex(stored[0], r"^1 FETCH \(UID 1 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)$")
        self.assertRegex(stored[1], r"^3 FETCH \(UID 3 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)$")
        flags = {int(i["UID"]): i["FLAGS"] for _, i in a.ok("UID FETCH 1:3 (FLAGS)").fetches()}
        self.assertEqual(flags, {1: ["\\Answered"], 2: ["\\Flagged"], 3: ["\\Answered"]})

    def test_uid_store_unchangedsince_reports_uids_and_zero_always_fails(self):
        a = self.session()
        a.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")                     # uids 2..6 are now seqs 1..5
        since = self.modseqs(a)[6]
        self.change(store=(4, 6))
        r = a.cmd(f"UID STORE 4:6 (UNCHANGEDSINCE {since}) +FLAGS (\\Seen)")
        self.assertEqual((r.status, r.code), ("OK", "MODIFIED 4,6"), r)
        r = a.cmd("STORE 1:2 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
        self.assertEqual((r.status, r.code), ("OK", "MODIFIED 1:2"), r)
        self.assertEqual([l for l in r.lines() if "FETCH" in l and "Seen" in l], [])

    def test_search_modseq_gives_the_highest_modseq_of_the_hits(self):
        hms, _ = self.hms()
        self.change(store=(2, 5))
        c = self.session()
        ms = self.modseqs(c)
        top = max(ms[2], ms[5])
        self.assertEqual(c.ok(f"SEARCH MODSEQ {hms + 1}").lines(), [f"SEARCH 2 5 (MODSEQ {top})"])
        self.assertEqual(c.ok(f"UID SEARCH MODSEQ {ms[5]}").lines(), [f"SEARCH 5 (MODSEQ {ms[5]})"])
        self.assertEqual(c.ok(f"SEARCH MODSEQ {top + 1}").lines(), ["SEARCH"])
        r = c.ok(f"SEARCH RETURN (ALL) MODSEQ {hms + 1}")
        self.assertEqual(r.lines(), [f'ESEARCH (TAG "{r.tag}") ALL 2,5 MODSEQ {top}'])
        self.assertEqual(c.ok("SEARCH 1:2 UNSEEN").lines(), ["SEARCH 1 2"])

    def test_status_highestmodseq_follows_changes(self):
        before, _ = self.hms()
        self.change(store=(1,))
        self.assertGreater(self.hms()[0], before)

    def test_modifiers_with_bad_syntax_are_refused(self):
        c = self.session()
        for cmd in ("FETCH 1 (FLAGS) (CHANGEDSINCE 0)", "FETCH 1 (FLAGS) (CHANGEDSINCE x)",
                    "FETCH 1 (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)", "FETCH 1 (FLAGS) (BOGUS)",
                    "FETCH 1 (FLAGS) CHANGEDSINCE", "FETCH 1 (FLAGS) ()",
                    "FETCH 1 (FLAGS) (CHANGEDSINCE 9223372036854775808)",
                    "UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)",
                    "STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)",
                    "STORE 1 (UNCHANGEDSINCE -1) +FLAGS (\\Seen)",
                    "STORE 1 (BOGUS 1) +FLAGS (\\Seen)", "STORE 1 (UNCHANGEDSINCE 5)",
                    "SELECT INBOX (BOGUS)", "SELECT INBOX ()", "SELECT INBOX (CONDSTORE CONDSTORE)",
                    "SELECT INBOX (QRESYNC (1 1))"):
            r = c.cmd(cmd)
            self.assertEqual(r.status, "BAD", f"{cmd}: {r}")
            if cmd.startswith("SELECT"):
                c.select()


class Qresync(CondstoreCase):
    def test_vanished_instead_of_expunge_for_other_and_own_expunges(self):
        a = self.session(enable="QRESYNC")
        plain = self.session()
        self.change(expunge=(2, 3))
        r = a.ok("NOOP")
        self.assertEqual(r.lines(), ["VANISHED 2:3"])
        self.assertEqual(plain.ok("NOOP").matching("EXPUNGE"), ["2 EXPUNGE", "2 EXPUNGE"])
        a.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")    # seqs 1 and 3 are uids 1 and 5
        r = a.ok("EXPUNGE")
        self.assertEqual(r.matching("VANISHED|EXPUNGE"), ["VANISHED 1,5"])
        self.assertEqual(r.code, f"HIGHESTMODSEQ {self.hms()[0]}", r)
        self.assertEqual([int(i["UID"]) for _, i in a.ok("FETCH 1:* (UID)").fetches()], [4, 6])
        plain.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(plain.ok("EXPUNGE").code, "", "no CONDSTORE: no HIGHESTMODSEQ code")

    def test_idle_session_gets_vanished(self):
        a = self.session(enable="QRESYNC")
        a.send("i1 IDLE\r\n")
        self.assertTrue(a.response().startswith(b"+"))
        self.change(store=(1,), expunge=(6,))
        seen = []
        a.sock.settimeout(5)
        while not any(b"VANISHED" in l for l in seen):
            seen.append(a.response())
        a.sock.settimeout(10)
        self.assertIn(b"* VANISHED 6", seen)
        a.send("DONE\r\n")
        self.assertEqual(a.read_until_tagged("i1").status, "OK")

    def test_select_qresync_resyncs_after_other_sessions_changes(self):
        hms, uidvalidity = self.hms()
        self.change(store=(1, 4), expunge=(2, 5))
        c = self.session(enable="QRESYNC", select=None)
        r = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {hms} 1:6))")
        self.assertIn("4 EXISTS", r.lines())
        vanished = r.matching("^VANISHED")
        self.assertEqual(vanished, ["VANISHED (EARLIER) 2,5"])
        fetches = {seq: i for seq, i in r.fetches()}
        self.assertEqual(sorted(fetches), [1, 3])      # uids 1 and 4
        for seq, uid in ((1, 1), (3, 4)):
            self.assertEqual(int(fetches[seq]["UID"]), uid)
            self.assertEqual(fetches[seq]["FLAGS"], ["\\Flagged"])
            self.assertGreater(modseq_of(fetches[seq]), hms)
        # VANISHED (EARLIER) before the FETCHes, and before the tagged OK
        lines = r.lines()
        self.assertLess(lines.index(vanished[0]), min(i for i, l in enumerate(lines)
                                                      if " FETCH " in l))
        self.assertEqual(r.code, "READ-WRITE")

    def test_select_qresync_known_uids_limit_the_answer(self):
        hms, uidvalidity = self.hms()
        self.change(store=(1, 4), expunge=(2, 5))
        c = self.session(enable="QRESYNC", select=None)
        r = c.ok(f"EXAMINE INBOX (QRESYNC ({uidvalidity} {hms} 3:5 (1:2 3:4)))")
        self.assertEqual(r.matching("^VANISHED"), ["VANISHED (EARLIER) 5"])
        self.assertEqual([int(i["UID"]) for _, i in r.fetches()], [4])
        self.assertEqual(r.code, "READ-ONLY")

    def test_select_qresync_without_known_uids_means_all_below_uidnext(self):
        hms, uidvalidity = self.hms()
        self.change(expunge=(1, 6))
        c = self.session(enable="QRESYNC", select=None)
        r = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {hms}))")
        self.assertEqual(r.matching("^VANISHED"), ["VANISHED (EARLIER) 1,6"])
        self.assertEqual(r.fetches(), [])

    def test_vanished_earlier_includes_uids_expunged_before_the_modseq(self):
        # The documented choice: no expunge records, so a UID gone before
        # the client's modseq is named too (RFC 7162 3.2.5 allows it).
        self.change(expunge=(3,))
        hms, uidvalidity = self.hms()
        self.change(expunge=(4,))
        c = self.session(enable="QRESYNC", select=None)
        r = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {hms} 1:6))")
        self.assertEqual(r.matching("^VANISHED"), ["VANISHED (EARLIER) 3:4"])

    def test_select_qresync_with_other_uidvalidity_is_a_plain_select(self):
        hms, uidvalidity = self.hms()
        self.change(store=(1,), expunge=(2,))
        c = self.session(enable="QRESYNC", select=None)
        r = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity + 1} {hms} 1:6))")
        self.assertEqual(r.matching("VANISHED|FETCH"), [])
        self.assertIn("5 EXISTS", r.lines())

    def test_select_qresync_with_bad_parameters_is_refused(self):
        c = self.session(enable="QRESYNC", select=None)
        for params in ("(QRESYNC)", "(QRESYNC ())", "(QRESYNC (1))", "(QRESYNC (0 1))",
                       "(QRESYNC (1 0))", "(QRESYNC (1 1 1:*))", "(QRESYNC (1 1 $))",
                       "(QRESYNC (1 1 1:5 (1:2 1:3)))", "(QRESYNC (1 1 1:5 (1:2)))",
                       "(QRESYNC (1 1 1:5 (1:2 3:4) x))", "(QRESYNC (1 1 x))",
                       "(QRESYNC (1 1) QRESYNC (1 1))"):
            r = c.cmd(f"SELECT INBOX {params}")
            self.assertEqual(r.status, "BAD", f"{params}: {r}")

    def test_uid_fetch_changedsince_vanished(self):
        hms, _ = self.hms()
        self.change(store=(3,), expunge=(2, 5))
        c = self.session(enable="QRESYNC")
        r = c.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {hms} VANISHED)")
        lines = r.lines()
        self.assertEqual(lines[0], "VANISHED (EARLIER) 2,5")
        self.assertEqual(len(lines), 2, r)
        self.assertRegex(lines[1], r"^2 FETCH \(UID 3 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$")
        r = c.ok(f"UID FETCH 3:4 (FLAGS) (VANISHED CHANGEDSINCE {hms})")
        self.assertEqual(r.matching("VANISHED"), [])
        self.assertEqual(c.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {hms} VANISHED)").status, "BAD")
        self.assertEqual(c.cmd("UID FETCH 1:* (FLAGS) (VANISHED)").status, "BAD")

    def test_select_of_another_mailbox_sends_closed_first(self):
        c = self.session(enable="QRESYNC")
        r = c.ok("SELECT Sent")
        self.assertEqual(r.lines()[0], "OK [CLOSED] Previous mailbox closed.")
        r = c.ok("EXAMINE INBOX")
        self.assertEqual(r.lines()[0], "OK [CLOSED] Previous mailbox closed.")


if __name__ == "__main__":
    unittest.main()
