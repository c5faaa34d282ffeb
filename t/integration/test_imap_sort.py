"""imapd SORT and THREAD (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267).

Runs on test_imapd's shared instance (real smtpd and imapd) with users of its
own.  Each mailbox is filled by APPEND with fixed internal dates, so every
sort key has a known answer; the expected orders below are worked out by
hand from the messages (comments say why), not computed by the test.  What
is checked is what a client sees (SORT reads the ENVELOPE the store cached at
delivery, THREAD=REFERENCES the message headers, so both paths are covered): the exact `* SORT` / `* THREAD` /
`* ESEARCH` lines and tagged statuses over a raw socket, and the same
commands through imaplib's sort() and thread(), a real client library.

The INBOX of the main user has six messages (after one appended and
expunged first, so that UIDs are sequence numbers + 1):

seq  From (mailbox / display)   To              Cc    Subject              sent (UTC)     arrival  pad
1    zed / "Zed Zulu"           alice (none)    mike  Re: Beta plan        02-Jan 10:00   05-Jan   5000
2    amy (no display name)      zoe/"Aardvark"  -     Alpha                01-Jan 14:00   03-Jan   1000
3    bob / "Bob"                carl (none)     anna  [list] Beta plan     01-Jan 12:00   01-Jan   3000
4    carl / "Carl"              bob (none)      -     Fwd: alpha           (no Date)      04-Jan   0
5    yvonne / "Aaron"           amy (none)      -     Re: Re: Beta plan    03-Jan 07:00   02-Jan   4000
6    bob / "Bob"                (no To)         -     Gamma                02-Jan 10:00   06-Jan   2000

Message-IDs: 3 is <b1@x>; 1 replies to it, 5 to 1 (References <b1@x> <b2@x>);
6 refers to a message that is not there.
"""
import imaplib
import re
import unittest

from test_imapd import TIMEOUT, Imap, ImapCase, PASSWORD, tearDownModule  # noqa: F401


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def msg(headers, pad):
    return crlf(headers.strip("\n") + "\n\n" + "Body.\n" + ("x" * 99 + "\n") * (pad // 100))


INBOX = [
    (msg("""
From: "Zed Zulu" <zed@z.example>
To: alice@a.example
Cc: mike@m.example
Subject: Re: Beta plan
Date: Tue, 02 Jan 2024 10:00:00 +0000
Message-ID: <b2@x>
In-Reply-To: <b1@x>
References: <b1@x>
""", 5000), "05-Jan-2024 12:00:00 +0000"),
    (msg("""
From: amy@a.example
To: "Aardvark" <zoe@z.example>
Subject: Alpha
Date: Mon, 01 Jan 2024 09:00:00 -0500
Message-ID: <a1@x>
""", 1000), "03-Jan-2024 12:00:00 +0000"),
    (msg("""
From: Bob <bob@b.example>
To: carl@c.example
Cc: Anna <anna@a.example>
Subject: [list] Beta plan
Date: Mon, 01 Jan 2024 12:00:00 +0000
Message-ID: <b1@x>
""", 3000), "01-Jan-2024 12:00:00 +0000"),
    (msg("""
From: Carl <carl@c.example>
To: bob@b.example
Subject: Fwd: alpha
Message-ID: <f1@x>
""", 0), "04-Jan-2024 12:00:00 +0000"),
    (msg("""
From: Aaron <yvonne@y.example>
To: amy@a.example
Subject: Re: Re: Beta plan
Date: Wed, 03 Jan 2024 08:00:00 +0100
Message-ID: <b3@x>
In-Reply-To: <b2@x>
References: <b1@x>
 <b2@x>
""", 4000), "02-Jan-2024 12:00:00 +0000"),
    (msg("""
From: Bob <bob@b.example>
Subject: Gamma
Date: Tue, 02 Jan 2024 10:00:00 +0000
Message-ID: <g1@x>
In-Reply-To: <missing@x>
References: <missing@x>
""", 2000), "06-Jan-2024 12:00:00 +0000"),
]

# A realistic conversation, appended out of order (seq: message):
# 1: p3 (reply to p2), 2: p1 (the invitation), 3: p5 (reply to p3),
# 4: p2 (reply to p1), 5: p4 (Outlook "RE:", reply to p1 sent after p2).
PARTY = [
    (msg("""
From: Carol <carol@c.example>
To: party@p.example
Subject: Re: Party on Saturday
Date: Sat, 06 Jan 2024 12:00:00 +0000
Message-ID: <p3@x>
In-Reply-To: <p2@x>
References: <p1@x> <p2@x>
""", 0), "06-Jan-2024 12:00:01 +0000"),
    (msg("""
From: Alice <alice@a.example>
To: party@p.example
Subject: Party on Saturday
Date: Sat, 06 Jan 2024 10:00:00 +0000
Message-ID: <p1@x>
""", 0), "06-Jan-2024 12:00:02 +0000"),
    (msg("""
From: Alice <alice@a.example>
To: party@p.example
Subject: Re: Party on Saturday
Date: Sat, 06 Jan 2024 13:00:00 +0000
Message-ID: <p5@x>
In-Reply-To: <p3@x>
References: <p1@x> <p2@x> <p3@x>
""", 0), "06-Jan-2024 12:00:03 +0000"),
    (msg("""
From: Bob <bob@b.example>
To: party@p.example
Subject: Re: Party on Saturday
Date: Sat, 06 Jan 2024 11:00:00 +0000
Message-ID: <p2@x>
In-Reply-To: <p1@x>
References: <p1@x>
""", 0), "06-Jan-2024 12:00:04 +0000"),
    (msg("""
From: Dave <dave@d.example>
To: party@p.example
Subject: RE: Party on Saturday
Date: Sat, 06 Jan 2024 11:30:00 +0000
Message-ID: <p4@x>
In-Reply-To: <p1@x>
""", 0), "06-Jan-2024 12:00:05 +0000"),
]


def append_all(c, mailbox, messages):
    for m, date in messages:
        c.ok(f'APPEND {mailbox} "{date}" {{{len(m)}+}}\r\n'.encode() + m)


def expand(seqset):
    """An ESORT ALL set in sort order: "3,5,2,4,6:7" -> [3, 5, 2, 4, 6, 7]."""
    out = []
    for part in seqset.split(","):
        lo, _, hi = part.partition(":")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


class SortThread(ImapCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.name, _ = cls.new_user("sort")
        c = Imap(cls.port)
        try:
            c.login(cls.name)
            throwaway = crlf("Subject: gone\n\nx\n")
            c.ok(f"APPEND INBOX (\\Deleted) {{{len(throwaway)}+}}\r\n".encode() + throwaway)
            c.ok("SELECT INBOX")
            c.ok("EXPUNGE")
            append_all(c, "INBOX", INBOX)
            c.ok("CREATE Party")
            append_all(c, "Party", PARTY)
        finally:
            c.close()

    def setUp(self):
        super().setUp()
        self.c = self.connect(login=self.name)
        self.c.ok("EXAMINE INBOX")

    def sort(self, args, uid=False):
        r = self.c.ok(("UID " if uid else "") + "SORT " + args)
        lines = r.matching(r"^SORT( |$)")
        self.assertEqual(len(lines), 1, r)
        return [int(x) for x in lines[0].split()[1:]]

    def thread(self, args, uid=False):
        r = self.c.ok(("UID " if uid else "") + "THREAD " + args)
        lines = r.matching(r"^THREAD( |$)")
        self.assertEqual(len(lines), 1, r)
        return lines[0][len("THREAD "):]

    # --- capabilities ---------------------------------------------------------

    def test_capabilities_announce_sort_thread_display_esort(self):
        caps = self.c.ok("CAPABILITY").matching("^CAPABILITY ")[0].split()
        for cap in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT",
                    "THREAD=REFERENCES"):
            self.assertIn(cap, caps)

    # --- each key -------------------------------------------------------------

    def test_sort_arrival_is_internal_date(self):
        self.assertEqual(self.sort("(ARRIVAL) UTF-8 ALL"), [3, 5, 2, 4, 1, 6])

    def test_sort_date_in_utc_with_internal_date_fallback_and_ties_by_sequence(self):
        # 2 is 09:00 -0500 = 14:00 UTC, after 3's 12:00; 1 and 6 are equal
        # (seq decides); 4 has no Date: its internal date (4 Jan) counts.
        self.assertEqual(self.sort("(DATE) UTF-8 ALL"), [3, 2, 1, 6, 5, 4])

    def test_sort_size(self):
        self.assertEqual(self.sort("(SIZE) UTF-8 ALL"), [4, 2, 6, 3, 5, 1])
        r = self.c.ok("FETCH 1:* (RFC822.SIZE)")
        sizes = {int(m.group(1)): int(m.group(2))
                 for m in (re.match(r"(\d+) FETCH \(RFC822\.SIZE (\d+)\)", l)
                           for l in r.lines()) if m}
        self.assertEqual(sorted(sizes, key=lambda s: sizes[s]), [4, 2, 6, 3, 5, 1])

    def test_sort_subject_uses_the_base_subject(self):
        # ALPHA (2, 4 "Fwd: alpha"), BETA PLAN (1, 3 "[list]", 5 "Re: Re:"), GAMMA.
        self.assertEqual(self.sort("(SUBJECT) UTF-8 ALL"), [2, 4, 1, 3, 5, 6])

    def test_sort_from_to_cc_use_the_first_mailbox(self):
        self.assertEqual(self.sort("(FROM) UTF-8 ALL"), [2, 3, 6, 4, 5, 1])
        # 6 has no To: the empty string sorts first.
        self.assertEqual(self.sort("(TO) UTF-8 ALL"), [6, 1, 5, 4, 3, 2])
        self.assertEqual(self.sort("(CC) UTF-8 ALL"), [2, 4, 5, 6, 3, 1])

    def test_sort_display_uses_the_display_name_else_the_address(self):
        # AARON, amy@a.example, Bob, Bob, Carl, Zed Zulu.
        self.assertEqual(self.sort("(DISPLAYFROM) UTF-8 ALL"), [5, 2, 3, 6, 4, 1])
        # "", Aardvark, alice@..., amy@..., bob@..., carl@...
        self.assertEqual(self.sort("(DISPLAYTO) UTF-8 ALL"), [6, 2, 1, 5, 4, 3])

    def test_sort_keys_are_case_insensitive_atoms(self):
        self.assertEqual(self.sort("(subject Date) utf-8 all"), [2, 4, 3, 1, 5, 6])

    # --- REVERSE, several keys, UID, search criteria ------------------------------

    def test_sort_reverse_keeps_ties_in_sequence_order(self):
        self.assertEqual(self.sort("(REVERSE DATE) UTF-8 ALL"), [4, 5, 1, 6, 2, 3])
        self.assertEqual(self.sort("(REVERSE SUBJECT) UTF-8 ALL"), [6, 1, 3, 5, 2, 4])
        self.assertEqual(self.sort("(REVERSE ARRIVAL) UTF-8 ALL"), [6, 1, 4, 2, 5, 3])

    def test_sort_several_keys(self):
        self.assertEqual(self.sort("(SUBJECT DATE) UTF-8 ALL"), [2, 4, 3, 1, 5, 6])
        self.assertEqual(self.sort("(SUBJECT REVERSE DATE) UTF-8 ALL"), [4, 2, 5, 1, 3, 6])
        self.assertEqual(self.sort("(FROM REVERSE SIZE) UTF-8 ALL"), [2, 3, 6, 4, 5, 1])
        self.assertEqual(self.sort("(REVERSE FROM ARRIVAL) UTF-8 ALL"), [1, 5, 4, 3, 6, 2])

    def test_uid_sort_answers_uids(self):
        self.assertEqual(self.sort("(DATE) UTF-8 ALL", uid=True), [4, 3, 2, 7, 6, 5])
        self.assertEqual(self.sort("(SUBJECT) UTF-8 UID 2:4", uid=True), [3, 2, 4])

    def test_sort_with_search_criteria(self):
        self.assertEqual(self.sort("(DATE) UTF-8 FROM bob"), [3, 6])
        self.assertEqual(self.sort("(SUBJECT) US-ASCII NOT SUBJECT beta"), [2, 4, 6])
        self.assertEqual(self.sort("(ARRIVAL) UTF-8 OR FROM amy TO amy"), [5, 2])
        self.assertEqual(self.sort("(DATE) UTF-8 2:4"), [3, 2, 4])
        self.assertEqual(self.sort("(DATE) UTF-8 LARGER 4000"), [1, 5])
        self.assertEqual(self.sort("(DATE) UTF-8 SUBJECT nothing-matches"), [])

    def test_esort_return_options(self):
        r = self.c.ok("SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL")
        self.assertEqual(r.matching("^ESEARCH"), [f'ESEARCH (TAG "{r.tag}") MIN 3 MAX 4 COUNT 6'])
        r = self.c.ok("UID SORT RETURN (ALL) (SUBJECT) UTF-8 ALL")
        line = r.matching("^ESEARCH")
        self.assertEqual(len(line), 1, r)
        m = re.fullmatch(r'ESEARCH \(TAG "%s"\) UID ALL (\S+)' % r.tag, line[0])
        self.assertTrue(m, r)
        self.assertEqual(expand(m.group(1)), [3, 5, 2, 4, 6, 7])
        r = self.c.ok("SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing-matches")
        self.assertEqual(r.matching("^ESEARCH"), [f'ESEARCH (TAG "{r.tag}") COUNT 0'])
        self.assertEqual(r.matching("^SORT"), [])

    # --- THREAD ---------------------------------------------------------------------

    def test_thread_references(self):
        # 3 <- 1 <- 5 by References; 6's parent is missing (a dummy with one
        # child: promoted); 4 "Fwd: alpha" goes under 2 "Alpha" by subject.
        self.assertEqual(self.thread("REFERENCES UTF-8 ALL"), "(3 1 5)(2 4)(6)")
        self.assertEqual(self.thread("REFERENCES UTF-8 ALL", uid=True), "(4 2 6)(3 5)(7)")

    def test_thread_references_with_search_criteria(self):
        self.assertEqual(self.thread("REFERENCES UTF-8 SUBJECT beta"), "(3 1 5)")
        # Without 3 its replies still hang together, under a dummy that goes.
        self.assertEqual(self.thread("REFERENCES UTF-8 NOT 3"), "(2 4)(1 5)(6)")
        self.assertEqual(self.thread("REFERENCES UTF-8 SUBJECT nothing-matches"), "")

    def test_thread_orderedsubject(self):
        self.assertEqual(self.thread("ORDEREDSUBJECT UTF-8 ALL"), "(3 (1)(5))(2 4)(6)")
        self.assertEqual(self.thread("ORDEREDSUBJECT US-ASCII ALL", uid=True),
                         "(4 (2)(6))(3 5)(7)")

    def test_thread_realistic_conversation_arriving_out_of_order(self):
        self.c.ok("EXAMINE Party")
        # p1 (2) has replies p2 (4, 11:00) and p4 (5, 11:30); p2 <- p3 (1) <- p5 (3).
        self.assertEqual(self.thread("REFERENCES UTF-8 ALL"), "(2 (4 1 3)(5))")
        # One subject: p1 first, then the others by date.
        self.assertEqual(self.thread("ORDEREDSUBJECT UTF-8 ALL"), "(2 (4)(5)(1)(3))")
        self.assertEqual(self.sort("(DATE) UTF-8 ALL"), [2, 4, 5, 1, 3])

    # --- errors -----------------------------------------------------------------------

    def test_unknown_charset_is_badcharset(self):
        for cmd in ("SORT (DATE) KOI8-R ALL", "THREAD REFERENCES X-UNKNOWN ALL",
                    "UID SORT (SUBJECT) ISO-8859-1 ALL", "THREAD ORDEREDSUBJECT \"\" ALL"):
            r = self.c.cmd(cmd)
            self.assertStatus(r, "NO", "BADCHARSET")
            self.assertEqual(r.code, "BADCHARSET (UTF-8 US-ASCII)")
            self.assertEqual(r.matching("^(SORT|THREAD)"), [])

    def test_malformed_commands_are_bad(self):
        for cmd in ("SORT DATE UTF-8 ALL", "SORT () UTF-8 ALL", "SORT (REVERSE) UTF-8 ALL",
                    "SORT (REVERSE REVERSE DATE) UTF-8 ALL", "SORT (BOGUS) UTF-8 ALL",
                    "SORT (DATE) UTF-8", "SORT (DATE) UTF-8 NOSUCHKEY",
                    "SORT RETURN (BOGUS) (DATE) UTF-8 ALL", "THREAD BOGUS UTF-8 ALL",
                    "THREAD REFERENCES UTF-8", "THREAD", "UID THREAD (REFERENCES) UTF-8 ALL"):
            self.assertStatus(self.c.cmd(cmd), "BAD")

    def test_sort_and_thread_need_a_selected_mailbox(self):
        c = self.connect(login=self.name)
        self.assertStatus(c.cmd("SORT (DATE) UTF-8 ALL"), "BAD")
        self.assertStatus(c.cmd("THREAD REFERENCES UTF-8 ALL"), "BAD")

    # --- a real client ------------------------------------------------------------------

    def test_imaplib_sort_and_thread(self):
        with imaplib.IMAP4("127.0.0.1", self.port, timeout=TIMEOUT) as m:
            m.login(self.name, PASSWORD)
            m.select("INBOX", readonly=True)
            typ, data = m.sort("(REVERSE DATE)", "UTF-8", "ALL")
            self.assertEqual((typ, data), ("OK", [b"4 5 1 6 2 3"]))
            typ, data = m.uid("SORT", "(DISPLAYFROM)", "UTF-8", "ALL")
            self.assertEqual((typ, data), ("OK", [b"6 3 4 7 5 2"]))
            typ, data = m.thread("REFERENCES", "UTF-8", "ALL")
            self.assertEqual((typ, data), ("OK", [b"(3 1 5)(2 4)(6)"]))
            typ, data = m.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "SINCE", "1-Jan-2024")
            self.assertEqual((typ, data), ("OK", [b"(4 (2)(6))(3 5)(7)"]))


if __name__ == "__main__":
    unittest.main()
