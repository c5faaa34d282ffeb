"""imapd: every line the server sends, checked against the IMAP formal syntax.

Owns: a recursive-descent validator (class Grammar) of the server side of the
formal syntax -- RFC 9051 section 9, RFC 3501 section 9 where IMAP4rev1
differs, and the response grammars of the extensions imapd advertises (RFC
5258, 4731, 7162, 5256, 9208, 2971, 4315, 3516) -- and tests that drive a
broad set of commands through Checked (test_imapd's raw-socket Imap), so that
every response line, literals included, is validated; a test fails naming the
line, the rule and the RFC section.  Until "* ENABLED IMAP4rev2" a session is
IMAP4rev1 and RFC 3501 applies (7-bit quoted strings and text, text required,
message/global is body-type-basic); after it RFC 9051 (UTF-8, text optional,
no STATUS RECENT).  Where the grammar leaves room, "Reading:" says what is
taken.  SelfTest checks the validator on a table of lines; Session to Changes
drive the commands; LongAndVersioned keeps what the server once got wrong.
"""
import base64
import contextlib
import email.policy
import functools
import re
import unittest
from email.message import EmailMessage

from test_imapd import (PASSWORD, TIMEOUT, Imap, ImapCase, multipart_message, quote,  # noqa: F401
                        tearDownModule, tls_context)

R9051, R3501 = "RFC 9051 section 9", "RFC 3501 section 9, IMAP4rev1 session"
REFS = {"search-correlator": "RFC 4731 section 3.1 / RFC 9051 section 9",
        "thread-list": "RFC 5256 section 5", "thread-nested": "RFC 5256 section 5",
        "search-sort-mod-seq": "RFC 7162 section 7", "fetch-mod-resp": "RFC 7162 section 7",
        "expunged-resp": "RFC 7162 section 7", "mod-sequence-value": "RFC 7162 section 7",
        "quota-response": "RFC 9208 section 9", "quotaroot-response": "RFC 9208 section 9",
        "id-response": "RFC 2971 section 4", "childinfo-extended-item": "RFC 5258 section 6",
        "resp-code-copy": "RFC 9051 section 9 / RFC 4315 section 4"}
ATOM_CHARS = frozenset(c for c in range(0x21, 0x7f) if c not in b'(){%*"\\]')
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
DATE_TIME = re.compile(rb'"( \d|\d\d)-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{4} '
                       rb'\d\d:\d\d:\d\d [+-]\d{4}"', re.I)
BASE64 = re.compile(rb"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
U32, U63 = 2 ** 32 - 1, 2 ** 63 - 1
MODES = (False, True)               # IMAP4rev1, then with IMAP4rev2 enabled
# Reading: "atom [SP 1*<any TEXT-CHAR except ']'>]" would also match
# "[UIDNEXT abc]" or "[READ-ONLY x]"; it is taken as the form of codes the
# grammar does not define, not as a way around the syntax of those it does.
BARE_CODES = set(b"""ALERT PARSE READ-ONLY READ-WRITE TRYCREATE UIDNOTSTICKY UNAVAILABLE
 AUTHENTICATIONFAILED AUTHORIZATIONFAILED EXPIRED PRIVACYREQUIRED CONTACTADMIN NOPERM INUSE
 EXPUNGEISSUED CORRUPTION SERVERBUG CLIENTBUG CANNOT LIMIT OVERQUOTA ALREADYEXISTS NONEXISTENT
 NOTSAVED HASCHILDREN CLOSED UNKNOWN-CTE NOMODSEQ""".split())
MSG_ATTS = set(b"""FLAGS ENVELOPE INTERNALDATE RFC822.SIZE RFC822 RFC822.HEADER RFC822.TEXT
 BODY BODYSTRUCTURE BINARY BINARY.SIZE UID MODSEQ""".split())
SFLAGS = {b"\\NONEXISTENT", b"\\NOSELECT", b"\\MARKED", b"\\UNMARKED"}
ENV_FIELDS = ("env-date", "env-subject", "env-from", "env-sender", "env-reply-to", "env-to",
              "env-cc", "env-bcc", "env-in-reply-to", "env-message-id")


class GrammarError(Exception):
    def __init__(self, rule, pos, why, ref=None):
        super().__init__(f"{rule}: {why}")
        self.rule, self.pos, self.why = rule, pos, why
        self.ref = ref or REFS.get(rule, R9051)


class Grammar:
    """One server response (final CRLF removed, literals inline as on the
    wire) against the formal syntax.  rev2: IMAP4rev2 is enabled.  tag: the
    tag of the command in progress (tagged replies, ESEARCH's TAG)."""

    def __init__(self, data, rev2=False, tag=None):
        self.d, self.i, self.rev2, self.tag = data, 0, rev2, tag

    # --- tokens ----------------------------------------------------------------------
    def err(self, rule, why, ref=None):
        raise GrammarError(rule, self.i, why, ref)

    def at(self, s):
        return self.d[self.i:self.i + len(s)].upper() == s.upper()

    def opt(self, s):
        if self.at(s):
            self.i += len(s)
            return True
        return False

    def take(self, s, rule):
        if not self.opt(s):
            self.err(rule, f"expected {s.decode()!r}, found {self.d[self.i:self.i + 12]!r}")

    def seq(self, rule, *parts):
        """One ABNF concatenation: bytes are taken literally, callables called."""
        for p in parts:
            self.take(p, rule) if isinstance(p, bytes) else p()

    def spaced(self, item):
        """*(SP item)"""
        while self.opt(b" "):
            item()

    def eol(self):
        return self.i >= len(self.d)

    def digit(self):
        return self.d[self.i:self.i + 1].isdigit()

    def number(self, rule, top=U32, nz=False):
        m = re.compile(rb"\d+").match(self.d, self.i)
        if not m:
            self.err(rule, f"expected a number, found {self.d[self.i:self.i + 12]!r}")
        if nz and m.group()[0] == ord("0"):
            self.err(rule, f"nz-number {m.group()!r} (zero or a leading 0)")
        if int(m.group()) > top:
            self.err(rule, f"{m.group().decode()} is out of range (max {top})")
        self.i = m.end()
        return int(m.group())

    nz = functools.partialmethod(number, nz=True)
    n64 = functools.partialmethod(number, top=U63)

    def modseq(self, rule="mod-sequence-value", zero=False):
        self.number(rule, U63, nz=not zero)

    def chars(self, allowed, rule, what):
        j = self.i
        while j < len(self.d) and self.d[j] in allowed:
            j += 1
        if j == self.i:
            self.err(rule, f"expected {what}, found {self.d[self.i:self.i + 12]!r}")
        word, self.i = self.d[self.i:j], j
        return word

    def atom(self, rule):
        return self.chars(ATOM_CHARS, rule, "an atom")

    def word(self, rule):
        return self.chars(ATOM_CHARS - {ord("[")}, rule, "a keyword").upper()

    def utf8(self, rule):
        """One non-ASCII character at i: IMAP4rev2 only, and only UTF-8."""
        lead = self.d[self.i]
        if not self.rev2:
            self.err(rule, f"8-bit byte 0x{lead:02x} outside a literal (RFC 3501 allows 7-bit "
                     "only; IMAP4rev2 was not enabled)", R3501)
        n = 2 if 0xc2 <= lead <= 0xdf else 3 if 0xe0 <= lead <= 0xef else 4 if lead <= 0xf4 else 0
        try:
            self.d[self.i:self.i + n].decode("utf-8")
        except UnicodeDecodeError:
            n = 0
        if not n or lead < 0xc2:
            self.err(rule, f"invalid UTF-8 at byte 0x{lead:02x}")
        self.i += n

    def quoted(self, rule="quoted"):
        self.take(b'"', rule)
        start = self.i
        while True:
            c = self.d[self.i] if not self.eol() else self.err(rule, "unterminated quoted string")
            if c == 0x22:
                self.i += 1
                return re.sub(rb"\\(.)", rb"\1", self.d[start:self.i - 1])
            if c == 0x5c:
                if self.d[self.i + 1:self.i + 2] not in (b'"', b"\\"):
                    self.err("QUOTED-CHAR", "backslash not followed by a quoted-special")
                self.i += 2
            elif c in (0, 10, 13):
                self.err("QUOTED-CHAR", f"{bytes([c])!r} in a quoted string (needs a literal)")
            elif c >= 0x80:
                self.utf8("QUOTED-CHAR")
            else:
                self.i += 1

    def literal(self, eight=False):
        rule = "literal8" if eight else "literal"
        self.take(b"~{" if eight else b"{", rule)
        n = self.n64(rule)
        if self.at(b"+"):
            self.err(rule, "non-synchronizing literal {n+} sent by a server")
        self.take(b"}\r\n", rule)
        data = self.d[self.i:self.i + n]
        if len(data) < n:
            self.err(rule, f"literal announces {n} bytes, only {len(data)} follow")
        if not eight and b"\0" in data:
            self.err("CHAR8", "NUL inside a literal (only literal8 may carry NUL)")
        self.i += n
        return data

    def string(self, rule="string"):
        return self.literal() if self.at(b"{") else self.quoted(rule)

    def nil(self):
        if self.at(b"NIL") and self.d[self.i + 3:self.i + 4] in (b"", b" ", b")"):
            self.i += 3
            return True
        return False

    def nstring(self, rule="nstring"):
        return None if self.nil() else self.string(rule)

    def astring(self, rule="astring"):
        if self.at(b'"') or self.at(b"{"):
            return self.string(rule)
        return self.chars(ASTRING_CHARS, rule, "an astring")

    def text(self, rule="text", code=False):
        """1*TEXT-CHAR to the end of the line (code: up to a ']')."""
        start = self.i
        while not self.eol() and not (code and self.d[self.i] == 0x5d):
            c = self.d[self.i]
            if c in (0, 10, 13):
                self.err("TEXT-CHAR", f"{bytes([c])!r} in text")
            if c >= 0x80:
                self.utf8(rule)
            else:
                self.i += 1
        if self.i == start:
            self.err(rule, "empty text")

    def plist(self, item, rule, empty=True):
        """"(" [item *(SP item)] ")" (empty=False: at least one item)."""
        self.take(b"(", rule)
        if self.opt(b")"):
            return None if empty else self.err(rule, "empty list")
        item()
        self.spaced(item)
        self.take(b")", rule)

    def seqset(self, rule):
        """Reading: sequence-set also admits "*" and "$", which mean something
        only in commands; a set in a response is numbers and ranges."""
        while True:
            self.nz(rule)
            if self.opt(b":"):
                self.nz(rule)
            if not self.opt(b","):
                return

    # --- responses --------------------------------------------------------------------
    def response(self, greeting=False):
        if greeting:
            self.take(b"* ", "greeting")
            if self.word("greeting") not in (b"OK", b"PREAUTH", b"BYE"):
                self.err("greeting", "not OK, PREAUTH or BYE")
            self.seq("greeting", b" ", self.resp_text)
        elif self.opt(b"+"):            # "+" SP (resp-text / base64), RFC 3501 and 9051
            self.take(b" ", "continue-req")
            m = BASE64.match(self.d, self.i)
            if m.end() == len(self.d):
                self.i = m.end()
            else:
                self.resp_text()
        elif self.opt(b"* "):
            self.response_data()
        else:
            tag = self.chars(ASTRING_CHARS - {ord("+")}, "tag", "a tag")
            if self.tag is not None and tag.decode() != self.tag:
                self.err("response-tagged", f"tag {tag!r} is not the command's ({self.tag})")
            self.take(b" ", "response-tagged")
            if self.word("resp-cond-state") not in (b"OK", b"NO", b"BAD"):
                self.err("resp-cond-state", "status is not OK, NO or BAD")
            self.seq("resp-cond-state", b" ", self.resp_text)
        if not self.eol():
            self.err("response", f"unparsed rest {self.d[self.i:self.i + 40]!r}")

    def resp_text(self):
        if self.opt(b"["):
            self.resp_text_code()
            self.take(b"]", "resp-text-code")
            if self.eol():
                self.err("resp-text", "no SP after ']' (and RFC 3501 also requires text)")
            self.take(b" ", "resp-text")
        if not self.eol():
            self.text()
        elif not self.rev2:
            self.err("resp-text", "no text (RFC 3501: text = 1*TEXT-CHAR, required)", R3501)

    def resp_text_code(self):
        name = self.word("resp-text-code")
        rule = f"resp-text-code {name.decode()}"
        code = {
            b"CAPABILITY": self.capability_data,
            b"PERMANENTFLAGS": lambda: self.seq(rule, b" ", lambda: self.plist(
                lambda: self.flag("flag-perm", perm=True), "flag-perm")),
            b"UIDNEXT": lambda: self.seq(rule, b" ", lambda: self.nz(rule)),
            b"APPENDUID": lambda: self.seq("resp-code-apnd", b" ",
                                           lambda: self.nz("resp-code-apnd"), b" ",
                                           lambda: self.nz("append-uid")),
            b"COPYUID": lambda: self.seq("resp-code-copy", b" ", lambda: self.nz("resp-code-copy"),
                                         b" ", lambda: self.seqset("uid-set"), b" ",
                                         lambda: self.seqset("uid-set")),
            b"HIGHESTMODSEQ": lambda: self.seq(rule, b" ", self.modseq),
            b"MODIFIED": lambda: self.seq(rule, b" ", lambda: self.seqset("sequence-set")),
            b"BADCHARSET": lambda: self.opt(b" ") and self.plist(
                lambda: self.quoted("charset") if self.at(b'"') else self.atom("charset"),
                rule, empty=False)}
        code[b"UIDVALIDITY"] = code[b"UNSEEN"] = code[b"UIDNEXT"]
        if name in code:
            code[name]()
        elif name not in BARE_CODES and self.opt(b" "):
            self.text("resp-text-code", code=True)

    def capability_data(self):
        caps = []
        self.spaced(lambda: caps.append(self.atom("capability").upper()))
        for need, ref in ((b"IMAP4REV1", R3501), (b"IMAP4REV2", R9051)):
            if need not in caps:
                self.err("capability-data", f"{need.decode()} missing", ref)

    def response_data(self):
        if self.digit():
            n = self.number("message-data")
            self.take(b" ", "message-data")
            word = self.word("message-data")
            if word in (b"EXPUNGE", b"FETCH") and n == 0:
                self.err("message-data", "message number 0 (nz-number)")
            if word == b"FETCH":
                self.seq("message-data", b" ",
                         lambda: self.plist(self.msg_att_item, "msg-att", empty=False))
            elif word not in (b"EXISTS", b"RECENT", b"EXPUNGE"):
                self.err("message-data", f"unknown {word!r}")
            return
        word = self.word("response-data")
        cond = lambda: self.seq("resp-cond-state", b" ", self.resp_text)     # noqa: E731
        handler = {
            b"OK": cond, b"NO": cond, b"BAD": cond, b"BYE": cond,
            b"CAPABILITY": self.capability_data,
            b"FLAGS": lambda: self.seq("mailbox-data", b" ",
                                       lambda: self.plist(self.flag, "flag-list")),
            b"LIST": self.list_data, b"LSUB": self.list_data, b"STATUS": self.status_data,
            b"ESEARCH": self.esearch, b"SEARCH": lambda: self.search_data("mailbox-data"),
            b"SORT": lambda: self.search_data("sort-data"), b"THREAD": self.thread_data,
            b"NAMESPACE": self.namespace, b"ID": self.id_data, b"QUOTA": self.quota,
            b"ENABLED": lambda: self.spaced(lambda: self.atom("enable-data")),
            b"VANISHED": lambda: self.seq("expunged-resp", b" ", lambda: self.opt(b"(EARLIER) "),
                                          lambda: self.seqset("expunged-resp")),
            b"QUOTAROOT": lambda: self.seq("quotaroot-response", b" ", self.astring, lambda: (
                self.spaced(lambda: self.astring("quotaroot-response"))))}.get(word)
        if handler is None:
            self.err("response-data", f"unknown untagged response {word!r}")
        handler()

    def flag(self, rule="flag", perm=False):
        if self.opt(b"\\"):        # system flags have flag-extension's form
            return b"\\*" if perm and self.opt(b"*") else b"\\" + self.atom(rule)
        return self.atom(rule)

    def list_data(self):
        flags = []
        self.take(b" ", "mailbox-list")
        self.plist(lambda: flags.append(self.flag("mbx-list-flags").upper()), "mbx-list-flags")
        if len([f for f in flags if f in SFLAGS]) > 1:
            self.err("mbx-list-flags", "more than one of \\NonExistent \\Noselect \\Marked "
                     f"\\Unmarked: {b' '.join(flags).decode()}")
        self.take(b" ", "mailbox-list")
        if not self.nil() and len(self.quoted("mailbox-list").decode("utf-8", "replace")) != 1:
            self.err("mailbox-list", "the delimiter is not one QUOTED-CHAR")
        self.seq("mailbox-list", b" ", self.astring)
        if self.opt(b" "):
            self.plist(self.list_ext_item, "mbox-list-extended")

    def list_ext_item(self):
        tag = self.astring("mbox-list-extended-item-tag").upper()
        self.take(b" ", "mbox-list-extended-item")
        if tag == b"CHILDINFO":
            self.plist(lambda: self.quoted("childinfo-extended-item"), "childinfo-extended-item",
                       empty=False)
        elif tag == b"OLDNAME":
            self.seq("oldname-extended-item", b"(", self.astring, b")")
        else:
            self.tagged_ext_val()

    def tagged_ext_val(self):
        """tagged-ext-simple / "(" [tagged-ext-comp] ")": comp is astrings and lists."""
        def comp():
            if self.at(b"("):
                self.plist(comp, "tagged-ext-comp", empty=False)
            else:
                self.astring("tagged-ext-comp")
        if self.at(b"("):
            self.plist(comp, "tagged-ext-val")
        else:
            self.seqset("tagged-ext-simple")

    def status_data(self):
        atts = {b"MESSAGES": self.number, b"UNSEEN": self.number, b"DELETED": self.number,
                b"UIDNEXT": self.nz, b"UIDVALIDITY": self.nz, b"SIZE": self.n64,
                b"DELETED-STORAGE": self.n64,
                b"APPENDLIMIT": lambda r: self.nil() or self.number(r),
                b"HIGHESTMODSEQ": lambda r: self.modseq(r, zero=True)}
        if not self.rev2:
            atts[b"RECENT"] = self.number       # RFC 3501 only: not in RFC 9051's status-att-val

        def att():
            name = self.word("status-att-val")
            if name not in atts:
                self.err("status-att-val", f"{name.decode()} is not a status item"
                         + (" of RFC 9051" if self.rev2 else ""))
            self.seq("status-att-val", b" ", lambda: atts[name](f"status-att-val {name.decode()}"))
        self.seq("mailbox-data", b" ", self.astring, b" ",
                 lambda: self.plist(att, "status-att-list"))

    def esearch(self):
        if self.opt(b" ("):
            self.take(b"TAG ", "search-correlator")
            tag = self.astring("search-correlator")   # Reading: astring (9051); 4731 has string
            if self.tag is not None and tag.decode() != self.tag:
                self.err("search-correlator", f"TAG {tag!r} is not the command's ({self.tag})")
            self.take(b")", "search-correlator")
        if self.at(b" UID") and self.d[self.i + 4:self.i + 5] in (b"", b" "):
            self.i += 4
        while self.opt(b" "):
            name = self.word("search-return-data")
            self.take(b" ", "search-return-data")
            nz = lambda: self.nz("search-return-data")      # noqa: E731
            {b"MIN": nz, b"MAX": nz, b"COUNT": lambda: self.number("search-return-data"),
             b"MODSEQ": self.modseq, b"ALL": lambda: self.seqset("search-return-data"),
             }.get(name, self.tagged_ext_val)()

    def search_data(self, rule):
        count = 0
        while self.opt(b" "):
            if self.at(b"("):
                if not count:
                    self.err("search-sort-mod-seq", "(MODSEQ n) with no number before it")
                return self.seq("search-sort-mod-seq", b"(MODSEQ ", self.modseq, b")")
            self.nz(rule)
            count += 1

    def thread_data(self):
        if self.opt(b" "):
            self.thread_list()
            while self.at(b"("):
                self.thread_list()

    def thread_list(self):
        self.take(b"(", "thread-list")
        if not self.at(b"("):
            self.nz("thread-members")
            while self.opt(b" "):
                if self.at(b"("):
                    break
                self.nz("thread-members")
            else:
                return self.take(b")", "thread-list")
        n = 0
        while self.at(b"("):
            self.thread_list()
            n += 1
        if n < 2:
            self.err("thread-nested", "one nested thread-list (thread-nested = 2*thread-list)")
        self.take(b")", "thread-list")

    def namespace(self):
        def descr():
            self.seq("namespace-descr", b"(", self.string, b" ")
            self.nil() or self.quoted("namespace-descr")
            self.spaced(lambda: self.seq("namespace-response-extension", self.string, b" ",
                                         lambda: self.plist(self.string, "namespace-response-"
                                                            "extension", empty=False)))
            self.take(b")", "namespace-descr")
        for _ in range(3):
            self.take(b" ", "namespace-response")
            if not self.nil():
                self.take(b"(", "namespace")
                descr()
                while self.at(b"("):
                    descr()
                self.take(b")", "namespace")

    def id_data(self):
        self.take(b" ", "id-response")
        items = []
        if not self.nil():
            self.plist(lambda: items.append(self.nstring("id-response") if len(items) % 2
                                            else self.string("id-response")), "id-response")
        if len(items) % 2:
            self.err("id-response", "a field without a value")

    def quota(self):
        def resource():
            self.seq("quota-response", lambda: self.atom("quota-response"), b" ",
                     lambda: self.n64("quota-response"), b" ", lambda: self.n64("quota-response"))
        self.seq("quota-response", b" ", self.astring, b" ",
                 lambda: self.plist(resource, "quota-response", empty=False))

    # --- FETCH --------------------------------------------------------------------------
    def msg_att_item(self):
        name = self.chars(set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789."),
                          "msg-att", "a fetch item").upper()
        if name not in MSG_ATTS:
            self.err("msg-att", f"unknown fetch item {name!r}")
        if name in (b"BODY", b"BINARY", b"BINARY.SIZE") and self.at(b"["):
            self.section(binary=name != b"BODY")
            # Reading: the ABNF gives BINARY no "<" number ">", but the prose of
            # RFC 9051 7.5.2 and RFC 3516 4.3 does (BINARY[1]<0>): accepted.
            if name != b"BINARY.SIZE" and self.opt(b"<"):
                self.seq("msg-att-static", lambda: self.number("msg-att-static"), b">")
            self.take(b" ", "msg-att-static")
            if name == b"BINARY.SIZE":
                return self.number("msg-att-static")
            if name == b"BINARY" and self.at(b"~{"):
                return self.literal(eight=True)
            return self.nstring("msg-att-static")
        if name in (b"BINARY", b"BINARY.SIZE"):
            self.err("msg-att", f"{name.decode()} needs a section")
        self.take(b" ", "msg-att")
        if name == b"INTERNALDATE":
            m = DATE_TIME.match(self.d, self.i) or self.err("date-time", "not DQUOTE "
                                                            "date-day-fixed-date-month-...")
            self.i = m.end()
            return
        {b"FLAGS": lambda: self.plist(self.flag, "msg-att-dynamic"), b"ENVELOPE": self.envelope,
         b"RFC822.SIZE": lambda: self.n64("msg-att-static"), b"BODY": self.body,
         b"BODYSTRUCTURE": self.body, b"UID": lambda: self.nz("uniqueid"),
         b"MODSEQ": lambda: self.seq("fetch-mod-resp", b"(", self.modseq, b")"),
         }.get(name, lambda: self.nstring("msg-att-static"))()     # RFC822[.HEADER/.TEXT]

    def section(self, binary):
        rule = "section-binary" if binary else "section"
        self.take(b"[", rule)
        if self.digit():
            self.nz("section-part")
            while self.opt(b"."):
                if not self.digit():
                    return self.section_text(rule, binary, mime=True)
                self.nz("section-part")
            return self.take(b"]", rule)
        if not self.opt(b"]"):
            self.section_text(rule, binary, mime=False)

    def section_text(self, rule, binary, mime):
        if binary:
            self.err(rule, "section-binary is a section-part only")
        if self.opt(b"HEADER.FIELDS"):
            self.opt(b".NOT")
            self.seq("section-msgtext", b" ", lambda: self.plist(
                lambda: self.astring("header-fld-name"), "header-list", empty=False))
        elif not (self.opt(b"HEADER") or self.opt(b"TEXT") or (mime and self.opt(b"MIME"))):
            self.err("section-spec", f"unknown section text {self.d[self.i:self.i + 15]!r}")
        self.take(b"]", rule)

    def envelope(self):
        self.take(b"(", "envelope")
        for k, rule in enumerate(ENV_FIELDS):
            if k:
                self.take(b" ", "envelope")
            if not 2 <= k <= 7:
                self.nstring(rule)
            elif not self.nil():        # "(" 1*address ")" / nil: never "()"
                self.take(b"(", rule)
                if not self.at(b"("):
                    self.err(rule, "an address list is \"(\" 1*address \")\" or NIL")
                while self.at(b"("):
                    self.seq("address", b"(", self.nstring, b" ", self.nstring, b" ",
                             self.nstring, b" ", self.nstring, b")")
                self.take(b")", rule)
        self.take(b")", "envelope")

    def body(self):
        self.take(b"(", "body")
        if self.at(b"("):
            while self.at(b"("):
                self.body()
            self.seq("body-type-mpart", b" ", lambda: self.string("media-subtype"))
            if self.opt(b" "):
                self.body_ext(self.body_fld_param)
            return self.take(b")", "body")
        quoted = self.at(b'"')
        kind = self.string("media-type").upper()
        self.take(b" ", "body-type-1part")
        sub = self.string("media-subtype").upper()
        self.seq("body-fields", b" ", self.body_fld_param, b" ",
                 lambda: self.nstring("body-fld-id"), b" ", lambda: self.nstring("body-fld-desc"),
                 b" ", lambda: self.string("body-fld-enc"), b" ",
                 lambda: self.number("body-fld-octets"))
        # media-message is "MESSAGE" "RFC822" in RFC 3501; RFC 9051 adds "GLOBAL".
        message = quoted and kind == b"MESSAGE" and sub in (b"RFC822", b"GLOBAL")
        if message and sub == b"GLOBAL" and not self.rev2:
            if self.at(b" ("):
                self.err("body-type-basic", "message/global sent as body-type-msg (envelope, "
                         "body, lines); RFC 3501 has only MESSAGE/RFC822 in media-message", R3501)
            message = False                     # body-type-basic in IMAP4rev1
        if message:
            self.seq("body-type-msg", b" ", self.envelope, b" ", self.body, b" ",
                     lambda: self.n64("body-fld-lines"))
        elif quoted and kind == b"TEXT":
            self.seq("body-type-text", b" ", lambda: self.n64("body-fld-lines"))
        if self.opt(b" "):
            self.body_ext(lambda: self.nstring("body-fld-md5"))
        self.take(b")", "body")

    def body_ext(self, first):
        """first [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc *(SP body-extension)]]]"""
        def dsp():
            self.nil() or self.seq("body-fld-dsp", b"(", lambda: self.string("body-fld-dsp"),
                                   b" ", self.body_fld_param, b")")

        def lang():
            if self.at(b"("):
                return self.plist(lambda: self.string("body-fld-lang"), "body-fld-lang", False)
            self.nstring("body-fld-lang")
        for k, part in enumerate((first, dsp, lang, lambda: self.nstring("body-fld-loc"))):
            if k and not self.opt(b" "):
                return
            part()
        self.spaced(self.body_extension)

    def body_extension(self):
        if self.at(b"("):
            self.plist(self.body_extension, "body-extension", empty=False)
        elif self.digit():
            self.n64("body-extension")
        else:
            self.nstring("body-extension")

    def body_fld_param(self):
        n = []
        if not self.nil():      # never "()"
            self.plist(lambda: n.append(self.string("body-fld-param")), "body-fld-param", False)
        if len(n) % 2:
            self.err("body-fld-param", "an attribute without a value")


def check(line, rev2=False, tag=None, greeting=False):
    """None, or a message naming the rule, the RFC and the offending line."""
    try:
        Grammar(line, rev2, tag).response(greeting)
        return None
    except GrammarError as e:
        lo = max(0, e.pos - 160)
        shown = (b"..." if lo else b"") + line[lo:e.pos] + b" <HERE> " + line[e.pos:e.pos + 60]
        return f"{e.rule} ({e.ref}): {e.why}\n    line: {shown!r}"


class SelfTest(unittest.TestCase):
    """The validator itself: lines that must pass, and lines that must fail
    naming the rule (rev2 1: checked as an IMAP4rev2 session)."""
    GOOD = [(b'* OK [CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=PLAIN] ready', 0), (b'+ idling', 0),
            (b'+ ', 0), (b'+ YWJj', 0), (b'* ID NIL', 0), (b'* SORT', 0), (b'* 0 EXISTS', 0),
            (b'* LIST (\\HasChildren) "/" "Tree" ("CHILDINFO" ("SUBSCRIBED"))', 0),
            (b'* LIST (\\Noselect \\HasNoChildren) NIL "new" ("OLDNAME" ("old") "X-E" (1 (a)))',
             0),
            (b'* ESEARCH (TAG "a1") UID MIN 1 MAX 9 COUNT 3 ALL 1,5:9 MODSEQ 7', 0),
            (b'* SEARCH 2 5 (MODSEQ 9)', 0), (b'* THREAD (1)(2 (3)(4 5))((6)(7))', 0),
            (b'* NAMESPACE (("" "/")) NIL (("#shared/" "/" "X-EXT" ("a" "b")))', 0),
            (b'* QUOTA "" (STORAGE 10 512)', 0), (b'* QUOTAROOT INBOX "" r2', 0),
            (b'* VANISHED (EARLIER) 1:5,9', 0), (b'* ENABLED IMAP4rev2 CONDSTORE', 0),
            (b'* STATUS "a b" (MESSAGES 1 SIZE 99 HIGHESTMODSEQ 0 RECENT 0 APPENDLIMIT NIL)', 0),
            (b'* 1 FETCH (BINARY[1] ~{3}\r\na\x00b UID 5 MODSEQ (3) '
             b'INTERNALDATE " 5-Jan-2024 12:00:00 +0100")', 0),
            (b'* 2 FETCH (BODY ("text" "plain" NIL NIL NIL "7bit" 0 0) BODY[1.MIME]<0> {2}\r\nab '
             b'RFC822 NIL BODY[HEADER.FIELDS ("{X" SUBJECT)] {0}\r\n BINARY.SIZE[2] 7)', 0),
            (b'* 3 FETCH (BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 1 1 '
             b'NIL NIL NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" 9 (NIL NIL NIL NIL NIL NIL '
             b'NIL NIL NIL NIL) ("text" "plain" NIL NIL NIL "7bit" 0 0) 0) "mixed" ("boundary" '
             b'"x") ("inline" NIL) ("en" "de") "loc" 7 (1 "x")))', 0),
            (b'* 4 FETCH (ENVELOPE ("d" {2}\r\n\xc3\xa9 (("N" NIL "m" "h")) NIL NIL ((NIL NIL "g" '
             b'NIL)(NIL NIL NIL NIL)) NIL NIL NIL "<id>") FLAGS (\\Seen $Junk \\Recent x[y))', 0),
            (b'a1 OK [COPYUID 7 1:3,5 10:13] done', 0), (b'a1 NO [BADCHARSET (UTF-8 "X Y")] no', 0),
            (b'* OK [X-VENDOR some text] hi', 0), (b'* BAD [PERMANENTFLAGS (\\Seen \\*)] x', 0),
            (b'a1 OK [APPENDUID 1 2] ok', 0), (b'* OK [READ-WRITE] ', 1), (b'* OK caf\xc3\xa9', 1),
            (b'* 1 FETCH (BODY ("message" "global" NIL NIL NIL "7bit" 9 (NIL "\xc3\xa9" NIL NIL '
             b'NIL NIL NIL NIL NIL NIL) ("text" "plain" NIL NIL NIL "7bit" 0 0) 0))', 1)]
    BAD = [(b'* LIST (\\Noselect \\NonExistent) "/" "x"', 0, "mbx-list-flags"),
           (b'* LIST () "//" "x"', 0, "mailbox-list"), (b'* LIST () "/" a%b', 0, "response"),
           (b'* 1 FETCH (BODY[] {5}\r\nabc)', 0, "literal"), (b'* 1 FETCH (BODY[] {2}\r\nabc)', 0,
                                                              "msg-att"),
           (b'* 1 FETCH (BODY[] "a\x00b")', 0, "QUOTED-CHAR"),
           (b'* 1 FETCH (BODY[] "a\\b")', 0, "QUOTED-CHAR"),
           (b'* 1 FETCH (BODY[] {3}\r\na\x00b)', 0, "CHAR8"),
           (b'* 1 FETCH (BODY[] {1+}\r\nx)', 0, "literal"),
           (b'* 1 FETCH (BODY[] "caf\xc3\xa9")', 0, "QUOTED-CHAR"),
           (b'* 1 FETCH (BODY[] "caf\xe9")', 1, "QUOTED-CHAR"),
           (b'* 1 FETCH (ENVELOPE (NIL NIL () NIL NIL NIL NIL NIL NIL NIL))', 0, "env-from"),
           (b'* 1 FETCH (ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL))', 0, "envelope"),
           (b'* 1 FETCH (BODY ("text" "plain" () NIL NIL "7bit" 1 1))', 0, "body-fld-param"),
           (b'* 1 FETCH (BODY ("text" "plain" NIL NIL NIL "7bit" 1))', 0, "body-type-text"),
           (b'* 1 FETCH (BODY ("message" "global" NIL NIL NIL "7bit" 9 (NIL NIL NIL NIL NIL NIL '
            b'NIL NIL NIL NIL) ("text" "plain" NIL NIL NIL "7bit" 0 0) 0))', 0, "body-type-basic"),
           (b'* 1 FETCH (INTERNALDATE "5-Jan-2024 12:00:00 +0100")', 0, "date-time"),
           (b'* 1 FETCH (FLAGS (\\Seen)', 0, "msg-att"), (b'* 1 FETCH (UID 0)', 0, "uniqueid"),
           (b'* 1 FETCH (BINARY[1.TEXT] NIL)', 0, "section-binary"),
           (b'* 0 FETCH (UID 1)', 0, "message-data"), (b'* FROB x', 0, "response-data"),
           (b'* OK [UIDNEXT 0] x', 0, "resp-text-code UIDNEXT"),
           (b'a1 OK [COPYUID 7 1,2', 0, "resp-code-copy"), (b'* OK [READ-WRITE]', 1, "resp-text"),
           (b'* OK [READ-WRITE] ', 0, "resp-text"), (b'* OK caf\xc3\xa9', 0, "text"),
           (b'* OK caf\xe9', 1, "text"), (b'* OK a\rb', 0, "TEXT-CHAR"),
           (b'* THREAD (1 (2))', 0, "thread-nested"), (b'* THREAD (1(2)(3))', 0, "thread-list"),
           (b'* SEARCH (MODSEQ 5)', 0, "search-sort-mod-seq"), (b'* SEARCH 1 ', 0, "mailbox-data"),
           (b'* ESEARCH (TAG "zz") ALL 1', 0, "search-correlator"),
           (b'* ESEARCH ALL 1:*', 0, "search-return-data"),
           (b'* STATUS INBOX (RECENT 1)', 1, "status-att-val"),
           (b'* CAPABILITY IMAP4rev1', 0, "capability-data"), (b'+', 0, "continue-req"),
           (b'a(b BAD x', 0, "response-tagged"), (b'* FLAGS (\\Seen a]b)', 0, "flag-list"),
           (b'* QUOTA "" ()', 0, "quota-response")]

    def test_good_lines_pass(self):
        for line, rev2 in self.GOOD:
            with self.subTest(line=line):
                self.assertIsNone(check(line, rev2, "a1", greeting=line.startswith(b"* OK [CAP")))

    def test_bad_lines_fail_naming_the_rule(self):
        for line, rev2, rule in self.BAD:
            with self.subTest(line=line):
                msg = check(line, rev2, "a1")
                self.assertIsNotNone(msg)
                self.assertTrue(msg.startswith(rule + " "), msg)


# --- a client whose every response is checked ----------------------------------------

class Checked(Imap):
    """test_imapd's raw client; each response goes through check() and any
    violation is kept in .violations.  IMAP4rev2 mode follows ENABLED."""

    def __init__(self, port, **kwargs):
        self.rev2, self.count, self.violations, self.expect_tag = False, 0, [], None
        super().__init__(port, **kwargs)

    def response(self):
        r = super().response()
        msg = check(r, self.rev2, self.expect_tag, greeting=self.count == 0)
        self.count += 1
        if msg:
            self.violations.append(msg)
        if re.match(rb"\* ENABLED .*\bIMAP4rev2\b", r, re.I):
            self.rev2 = True
        return r

    def read_until_tagged(self, tag):
        self.expect_tag = tag
        try:
            return super().read_until_tagged(tag)
        finally:
            self.expect_tag = None

    def raw_until(self, tag):
        """Responses up to the tagged one of tag, whatever comes before it."""
        while not self.response().startswith(tag.encode() + b" "):
            pass

    def append(self, mailbox, msg, flags=None, date=None, eight=False):
        args = (f" ({flags})" if flags is not None else "") + (f' "{date}"' if date else "")
        lit = ("~" if eight else "") + f"{{{len(msg)}+}}\r\n"
        return self.ok(f"APPEND {quote(mailbox)}{args} {lit}".encode() + msg)


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def nested_message():
    """multipart/mixed: text, then a message/rfc822 that is multipart/alternative."""
    inner, outer = EmailMessage(), EmailMessage()
    inner["From"], inner["Subject"], inner["Date"] = "In <i@x.test>", "inner", "1 Jan 2024 10:00 Z"
    inner.set_content("plain inner\n")
    inner.add_alternative("<p>html inner</p>\n", subtype="html")
    outer["From"], outer["To"], outer["Subject"] = "x@example.test", "y@example.test", "forward"
    outer.set_content("see attached\n")
    outer.add_attachment(inner)
    return outer.as_bytes(policy=email.policy.SMTP)


def corpus():
    """The varied mailbox: [(flags, internal date, message)].  5-8 are a thread."""
    plain = crlf('From: Alice Example <alice@remote.example>\nTo: Bob <bob@example.test>, '
                 'c@example.test\nCc: "Dave, D." <dave@example.test>\nSubject: a "quoted" \\ '
                 "back\\slash, {5} and a\ttab\nDate: Tue, 3 Mar 2026 10:00:00 +0100\n"
                 "Message-ID: <plain.1@remote.example>\n\nLine one.\n")
    odd = crlf('From: "Doe, \\"JD\\" \\\\ John" <john.doe@example.test>\nTo: undisclosed-'
               'recipients:;\nCc: Team: a@example.test, "B B" <b@example.test>;, c@example.test\n'
               'Bcc: "odd local"@example.test, nodomain, <@route.example:x@example.test>, :;, <>\n'
               "Reply-To: (just a comment) x@example.test (X)\nSender: <>\n"
               "In-Reply-To: <a@b> <c@d>\nSubject: =?UTF-8?B?R3LDvMOfZQ==?= =?ISO-8859-1?Q?ca"
               "f=E9?=\nDate: not a date\nX-Folded: across\n  two\n\tlines\n"
               "Message-ID: <x\x01y@z>\n\nodd\n")
    eight = (b"From: J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbccher.example>\r\nTo: K\xf6ln <k@x.test>\r\n"
             b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\nIn-Reply-To: <\xe9@x>\r\n"
             b'MIME-Version: 1.0\r\nContent-Type: application/octet-stream; name="caf\xe9.bin"\r\n'
             b"Content-Description: caf\xe9\r\nContent-Language: d\xe9\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n")
    params = crlf('MIME-Version: 1.0\nFrom: p@example.test\nSubject: a folded\n subject\n'
                  'Content-Type: text/plain; charset="utf-8"; format=flowed;\n name="a \\"q\\" '
                  'b.txt"; title*0="x"; title*1="y"\nContent-Transfer-Encoding: quoted-printable\n'
                  "Content-ID: <cid1@example.test>\nContent-Description: a description\n"
                  'Content-Disposition: inline; filename="x.txt"; size=12\nContent-Language: en, '
                  "de\nContent-Location: http://example.test/x\n"
                  "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\nqp caf=C3=A9 =\nsoft break\n")
    odd_mime = [crlf("MIME-Version: 1.0\nFrom: q@x\nContent-Type: multipart/mixed\n\n--x\n\nabc\n"),
                crlf("MIME-Version: 1.0\nFrom: q@x\nContent-Type: multipart/mixed; boundary=x\n\n"),
                crlf("MIME-Version: 1.0\nFrom: q@x\nContent-Type: message/rfc822\n\n"),
                crlf('MIME-Version: 1.0\nContent-Type: (c) text; a=b; c; =e; f=""\n'
                     "Content-Disposition: x\nContent-Transfer-Encoding: x-weird\n\nx\n"),
                crlf("MIME-Version: 1.0\nContent-Type: image/png;\n\nx"),
                b"MIME-Version: 1.0\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 40 + b"x"]
    thread = [crlf(f"From: t{k}@example.test\nSubject: {s}\nMessage-ID: <t{k}@x>\n{h}"
                   f"Date: Wed, {k + 1} Jan 2025 10:00:00 +0000\n\nthread {k}\n")
              for k, s, h in ((0, "thread", ""), (1, "Re: thread", "References: <t0@x>\n"),
                              (2, "Re: thread", "References: <t0@x>\n"),
                              (3, "Re: Re: thread", "References: <t0@x> <t1@x>\n"))]
    more = thread[1:] + [crlf("X-Nothing: here\n\nno From, Date, Subject\n"), eight, params,
                         crlf("Subject: " + "long " * 400 + "\n\nx\n")] + odd_mime
    return [("\\Seen", " 5-Jan-2024 12:00:00 +0100", plain),
            ("\\Flagged $Forwarded x[y", "15-Feb-2024 23:59:59 -0800", multipart_message()[0]),
            (None, None, nested_message()), ("", None, odd),
            ("\\Answered \\Draft", "01-Mar-2024 00:00:00 +0000", thread[0])] + [
                (None, None, m) for m in more]


class GrammarCase(ImapCase):
    """A user of its own (with the corpus in INBOX when CORPUS), and sessions
    that fail on any grammar violation (at the end of the with block)."""
    CORPUS = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.name, _ = cls.new_user("gram")
        with contextlib.closing(Checked(cls.port)) as c:
            c.login(cls.name)
            for flags, date, msg in corpus() if cls.CORPUS else ():
                c.append("INBOX", msg, flags, date)
            if c.violations:
                raise AssertionError("\n".join(c.violations))

    @contextlib.contextmanager
    def session(self, login=True, rev2=False, select=None, user=None):
        c = Checked(self.port)
        self.addCleanup(c.close)
        try:
            if login:
                c.login(user or self.name)
            if rev2:
                c.ok("ENABLE IMAP4rev2")
            if select:
                c.select(select)
            yield c
        except Exception as e:
            if c.violations:
                raise AssertionError(self.report(c)) from e
            raise
        self.assertFalse(c.violations, self.report(c))

    def report(self, c):
        return (f"{len(c.violations)} grammar violation(s) in {c.count} responses "
                f"({'IMAP4rev2' if c.rev2 else 'IMAP4rev1'} session):\n" + "\n".join(c.violations))

    def fresh_user(self, n=4):
        """A new user whose INBOX holds the first n corpus messages."""
        name, _ = self.user("gram")
        with self.session(user=name) as c:
            for flags, date, msg in corpus()[:n]:
                c.append("INBOX", msg, flags, date)
        return name

    def run_all(self, c, commands, want=None):
        """Each command in turn; want: "OK" (each must succeed), "fail" (each
        must not), None (any status: only the grammar counts)."""
        for cmd in commands:
            r = c.cmd(cmd.encode() if isinstance(cmd, str) else cmd)
            if want is not None and (r.status == "OK") != (want == "OK"):
                self.fail(f"{cmd[:80]!r}: {r}")


# --- the commands ---------------------------------------------------------------------

class Session(GrammarCase):
    def test_not_authenticated_state_starttls_authenticate_logout(self):
        with self.session(login=False) as c:
            self.run_all(c, ["CAPABILITY", "NOOP", 'ID ("name" "grammar-test" "os" NIL)'], "OK")
            self.run_all(c, [f"LOGIN {self.name} wrong-password", "SELECT INBOX", "LOGIN",
                             "ENABLE IMAP4rev2", "AUTHENTICATE X-NONE"], "fail")
            c.send("a1 AUTHENTICATE PLAIN\r\n")
            self.assertTrue(c.response().startswith(b"+"))
            c.send("*\r\n")                                       # the client cancels
            c.read_until_tagged("a1")
            c.ok("STARTTLS")
            c.starttls(tls_context(self.mc.cert))
            ir = base64.b64encode(f"\0{self.name}\0{PASSWORD}".encode()).decode()
            self.run_all(c, ["CAPABILITY", f"AUTHENTICATE PLAIN {ir}", "CAPABILITY", "ID NIL",
                             "LOGOUT"], "OK")

    def test_enable_namespace_quota(self):
        self.mc.mailctl("user", "quota", self.name, "10M", check=True)
        for rev2 in MODES:
            with self.session() as c:
                self.run_all(c, ["ENABLE CONDSTORE QRESYNC X-UNKNOWN" + " IMAP4rev2" * rev2,
                                 "NAMESPACE", "GETQUOTAROOT INBOX", 'GETQUOTA "User quota"'], "OK")
                self.run_all(c, ['GETQUOTA ""', 'SETQUOTA "" (STORAGE 10)', "GETQUOTAROOT nosuch"])

    def test_errors(self):
        auth = ["FOO", "FETCH 1 FLAGS", "SELECT nosuch", "LOGIN a b", "CREATE INBOX",
                "DELETE INBOX", "RENAME nosuch other", "UID FOO", "STATUS INBOX (BOGUS)", "LIST",
                'LIST "" "*" RETURN (BOGUS)', "SELECT", 'SELECT "unterminated', "IDLE x", "CLOSE",
                "APPEND nosuch {3+}\r\nabc", "APPEND INBOX ~{3+}\r\na\0b", "SEARCH ALL",
                'APPEND INBOX "99-Foo-2024 00:00:00 +0000" {3+}\r\nabc', "COMPRESS FOO",
                "APPEND INBOX (\\Bogus) {3+}\r\nabc", "GETQUOTAROOT", 'CREATE "a%b"',
                b"CREATE {4+}\r\na\xffb\x01"]
        selected = ["FETCH 0 FLAGS", "FETCH 1:* (FLAGS", "FETCH 1 BOGUS", "FETCH x FLAGS",
                    "FETCH 999 FLAGS", "STORE 1 +FLAGS (\\Bogus)", "STORE 1 +FLAGS (a]b)",
                    "SEARCH FOO", "COPY 1 nosuch", "SEARCH CHARSET X-BOGUS ALL", "MOVE 1 nosuch",
                    "FETCH 1 BINARY[1.TEXT]", "UID EXPUNGE x", "SORT (BOGUS) UTF-8 ALL",
                    "THREAD BOGUS UTF-8 ALL", 'FETCH 1 BODY[HEADER.FIELDS ("")]',
                    "FETCH 1 BODY[]<0.0>"]
        for rev2 in MODES:
            with self.session(rev2=rev2) as c:
                self.run_all(c, auth + [b'CREATE "caf\xc3\xa9"'] * (not rev2), "fail")
                self.run_all(c, ["NOOP extra", f"NOOP {'X' * 9000}"])     # lenient: OK or not
                c.select("INBOX")
                self.run_all(c, selected, "fail")
                # Not tags: the answer may not carry them (tag = 1*<ASTRING-CHAR except "+">).
                c.send(b"a(b NOOP\r\n+x NOOP\r\n* NOOP\r\n\r\na{b NOOP\r\nt\xe9 NOOP\r\n"
                       b"ok1 NOOP\r\n")
                c.raw_until("ok1")
        with self.session() as c:                       # a line too long: * BYE
            c.send(b"a1 NOOP " + b"x" * 70000 + b"\r\n")
            self.assertTrue(c.response().startswith(b"* BYE "))
            self.assertTrue(c.closed_by_server())


class Mailboxes(GrammarCase):
    NAMES = ["a b", 'quote"d', "back\\slash", "br]acket", "par(en", "&AOQ-ndern", "x[y",
             "Tree/leaf", "Tree/sub/deep"]
    # IMAP4rev2 names are UTF-8 (RFC 9051 5.1): quoted strings with UTF-8.
    UTF8_NAMES = ["Entw\u00fcrfe/\u00c4rger & Co", "\u65e5\u672c\u8a9e", 'Party "\U0001f389"']
    ATTS = "MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ"

    def test_list_lsub_status(self):
        for rev2 in MODES:
            with self.session(rev2=rev2) as c:
                names = self.NAMES + self.UTF8_NAMES * rev2
                self.run_all(c, [f"CREATE {quote(n)}" for n in names])
                self.run_all(c, [
                    'UNSUBSCRIBE "Tree"', 'SUBSCRIBE "Tree/sub/deep"', 'SUBSCRIBE "ghost"',
                    'LIST "" ""', 'LIST "" "*"', 'LIST "" "%"', 'LIST "" "Tree/%"', 'LIST "" INBOX',
                    'LIST (SPECIAL-USE) "" "*"', 'LIST (SUBSCRIBED) "" "*"', 'LSUB "" "*"',
                    'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', 'LIST "" ("INBOX" "Sent" "Tree/*")',
                    'LIST "" "*" RETURN (SPECIAL-USE CHILDREN SUBSCRIBED)', 'LSUB "" "%"',
                    f'LIST "" "*" RETURN (STATUS ({self.ATTS}))', f"STATUS INBOX ({self.ATTS})",
                    f'LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN STATUS ({self.ATTS}))',
                    f'STATUS "Tree/leaf" ({self.ATTS})', "STATUS INBOX (MESSAGES)"], "OK")
                self.run_all(c, [f"SUBSCRIBE {quote(n)}" for n in names] + [
                    'LSUB "" "*"', f"GETQUOTAROOT {quote(names[-1])}",
                    f'LIST "" "*" RETURN (SUBSCRIBED STATUS ({self.ATTS}))'] + [
                    f"STATUS {quote(n)} ({self.ATTS})" for n in names], "OK")
                self.run_all(c, [f"SELECT {quote(n + 'x')}" for n in names])
                self.run_all(c, ['LIST (REMOTE) "" "*"', "STATUS INBOX (APPENDLIMIT)",
                                 'UNSUBSCRIBE "ghost"'])
                self.run_all(c, [f"DELETE {quote(n)}" for n in reversed(names)])

    def test_create_rename_delete(self):
        with self.session() as c:
            self.run_all(c, ['CREATE "Proj"', 'CREATE "Proj/a"', 'CREATE "Proj/b/"',
                             'RENAME "Proj" "Work"', 'LIST "" "Work*" RETURN (CHILDREN)',
                             'RENAME INBOX "Old inbox"', 'DELETE "Work"', 'LIST "" "*"',
                             'LIST (SUBSCRIBED) "" "Work*" RETURN (CHILDREN)'], "OK")
            self.run_all(c, ['RENAME "Work/a" "Work/b"', 'DELETE "Work/a"', 'DELETE "Work/b"',
                             'DELETE "Old inbox"', 'LIST "" "Work*"'])


FETCH_ITEMS = ["(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID)", "ALL", "FAST", "FULL", "BODY",
               "BODYSTRUCTURE", "BODY.PEEK[]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]",
               "BODY.PEEK[1]", "BODY.PEEK[1.MIME]", "BODY.PEEK[2]", "BODY.PEEK[2.MIME]",
               "BODY.PEEK[2.HEADER]", "BODY.PEEK[2.TEXT]", "BODY.PEEK[2.1]", "BODY.PEEK[2.2.MIME]",
               'BODY.PEEK[HEADER.FIELDS (From Subject "X-Nothing" "{x" Content-Type)]',
               "BODY.PEEK[HEADER.FIELDS.NOT (From Received)]", "BODY.PEEK[]<0.20>",
               "BODY.PEEK[1]<5.10>", "BODY.PEEK[TEXT]<100000.5>", "BINARY.PEEK[]", "BINARY.PEEK[1]",
               "BINARY.PEEK[2]", "BINARY.SIZE[1]", "BINARY.SIZE[2]", "BINARY.PEEK[1]<0.8>",
               "RFC822.HEADER", "RFC822.TEXT", "(UID MODSEQ FLAGS)", "RFC822", "BODY[]"]


class Fetch(GrammarCase):
    def test_fetch_every_item_of_every_message(self):
        for rev2 in MODES:
            with self.session(rev2=rev2, select="INBOX") as c:
                self.run_all(c, [f"FETCH 1:* {items}" for items in FETCH_ITEMS], "OK")
                self.run_all(c, [f"UID FETCH 1:* {items}" for items in FETCH_ITEMS[:6]], "OK")
                for seq in range(1, len(corpus()) + 1):     # alone: a NO may not hide the rest
                    self.run_all(c, [f"FETCH {seq} {items}" for items in FETCH_ITEMS[4:]])

    def test_condstore_qresync(self):
        name = self.fresh_user(6)
        for rev2 in MODES:
            with self.session(user=name, rev2=rev2) as c:
                r = c.ok("SELECT INBOX (CONDSTORE)")
                uidv = re.search(r"UIDVALIDITY (\d+)", " ".join(r.lines())).group(1)
                self.run_all(c, [
                    "FETCH 1:* (UID FLAGS) (CHANGEDSINCE 1)", "SEARCH MODSEQ 1",
                    "SEARCH RETURN (MIN MAX COUNT ALL) MODSEQ 1", "STORE 2 +FLAGS (\\Deleted)",
                    "EXPUNGE", "ENABLE QRESYNC",
                    f"SELECT INBOX (QRESYNC ({uidv} 1 1:100 (1:4 1:4)))",
                    "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "STORE 1 +FLAGS (\\Deleted)",
                    "UID EXPUNGE 1:*", "EXAMINE INBOX (QRESYNC (1 1))", "UNSELECT",
                    "STATUS INBOX (HIGHESTMODSEQ)"], "OK")


class Search(GrammarCase):
    def test_search_esearch_searchres_sort_thread(self):
        for rev2 in MODES:
            with self.session(rev2=rev2, select="INBOX") as c:
                self.run_all(c, [
                    "SEARCH ALL", "UID SEARCH ALL", "SEARCH NOT ALL", "SEARCH FLAGGED",
                    "SEARCH CHARSET UTF-8 SUBJECT thread", "SEARCH RETURN () ALL",
                    "SEARCH RETURN (MIN MAX COUNT ALL) ALL", "UID SEARCH RETURN (ALL) ALL",
                    "SEARCH RETURN (COUNT) NOT ALL", "SEARCH RETURN (MIN) 2:4",
                    "SEARCH RETURN (MIN) 99", "UID SEARCH RETURN (SAVE) FLAGGED", "FETCH $ (FLAGS)",
                    "SEARCH $", "SEARCH RETURN (SAVE MIN MAX) SUBJECT thread", "UID SEARCH UID $",
                    "SEARCH RETURN (ALL) MODSEQ 1", "SEARCH HEADER X-Nothing here",
                    b"SEARCH CHARSET UTF-8 SUBJECT {6+}\r\nGr\xc3\xbc\xc3\x9f",
                    "SEARCH OR SEEN DRAFT LARGER 10 SENTBEFORE 1-Jan-2030",
                    "SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE DATE FROM) UTF-8 ALL",
                    "SORT (DISPLAYFROM DISPLAYTO SIZE ARRIVAL CC TO) UTF-8 ALL",
                    "UID SORT (SUBJECT) UTF-8 ALL",
                    "SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL",
                    "UID SORT RETURN (ALL) (SIZE) UTF-8 NOT ALL", "SORT (SUBJECT) UTF-8 MODSEQ 1",
                    "SORT RETURN (SAVE) (DATE) UTF-8 SUBJECT thread", "SORT (DATE) UTF-8 $",
                    "THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL",
                    "UID THREAD REFERENCES UTF-8 ALL", "THREAD REFERENCES UTF-8 NOT ALL"], "OK")


class Changes(GrammarCase):
    def test_store_copy_move_expunge_close(self):
        name = self.fresh_user(8)
        for rev2 in MODES:
            with self.session(user=name, rev2=rev2) as c:
                self.run_all(c, [
                    "ENABLE CONDSTORE", "SELECT INBOX", "STORE 1 +FLAGS (\\Flagged kw1 $Junk)",
                    "STORE 1 -FLAGS.SILENT (\\Flagged)", "STORE 1:2 FLAGS (\\Seen)",
                    "UID STORE 1:* +FLAGS.SILENT (\\Answered)",
                    "STORE 1:* (UNCHANGEDSINCE 1) +FLAGS (x)",
                    "UID STORE 1:* (UNCHANGEDSINCE 999999) -FLAGS (\\Draft)", "COPY 1:2 Sent",
                    "UID COPY 1:* Trash", "MOVE 1 Junk", "UID MOVE 2:3 Drafts",
                    "SEARCH RETURN (SAVE) ALL", "COPY $ Trash", "STORE 1:2 +FLAGS (\\Deleted)",
                    "UID EXPUNGE 1:*", "STORE 1 +FLAGS (\\Deleted)", "EXPUNGE", "NOOP",
                    "ENABLE QRESYNC", "SELECT Trash", "STORE 1:3 +FLAGS.SILENT (\\Deleted)",
                    "EXPUNGE",
                    "UID MOVE 1:* INBOX", "CLOSE", "EXAMINE INBOX", "FETCH 1 (FLAGS)", "CLOSE",
                    "SELECT Sent", "CHECK", "UNSELECT", 'CREATE "Empty"', 'SELECT "Empty"',
                    "UID FETCH 1:* FLAGS", "SEARCH ALL", "UNSELECT", 'DELETE "Empty"'], "OK")

    def test_append_variants(self):
        msg = crlf("From: a@example.test\nSubject: appended\n\nbody\n")
        for rev2 in MODES:
            with self.session(rev2=rev2) as c:
                c.append("INBOX", msg)
                c.append("INBOX", msg, "\\Seen \\Flagged $MDNSent kw", "31-Dec-2023 23:59:59 +1400")
                c.append("Sent", msg, "", " 1-Jan-2024 00:00:00 -1200", eight=True)
                c.send(f"s1 APPEND Drafts {{{len(msg)}}}\r\n")
                self.assertTrue(c.response().startswith(b"+"))
                c.send(msg + b"\r\n")
                self.assertEqual(c.read_until_tagged("s1").status, "OK")

    def test_idle_sees_another_session(self):
        name = self.fresh_user(4)
        for rev2 in MODES:
            with self.session(user=name, rev2=rev2, select="INBOX") as a, \
                    self.session(user=name, select="INBOX") as b:
                a.send("i1 IDLE\r\n")
                self.assertTrue(a.response().startswith(b"+"))
                b.append("INBOX", crlf("Subject: during idle\n\nx\n"))
                self.run_all(b, ["STORE 1 +FLAGS (\\Flagged \\Deleted)", "EXPUNGE"], "OK")
                a.sock.settimeout(5)
                while not re.match(rb"\* \d+ EXPUNGE", a.response()):
                    pass
                a.sock.settimeout(TIMEOUT)
                a.send("DONE\r\n")
                self.assertEqual(a.read_until_tagged("i1").status, "OK")


# --- long lines and version-dependent forms -----------------------------------------------

class LongAndVersioned(GrammarCase):
    """Responses that were once wrong: reply lines over 2 KiB (once cut at
    imapd's 2048-byte reply buffer), message/global in an IMAP4rev1 session,
    STATUS RECENT in an IMAP4rev2 one."""
    CORPUS = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()                    # 321 messages: 10, COPY 1:* INBOX x5, global
        with contextlib.closing(Checked(cls.port)) as c:
            c.login(cls.name)
            for _ in range(10):
                c.append("INBOX", crlf("Subject: copy me\n\nx\n"))
            c.select("INBOX")
            for _ in range(5):
                c.ok("COPY 1:* INBOX")
                c.ok("NOOP")                    # the EXISTS of the copies
            c.append("INBOX", crlf("From: a@b\nMIME-Version: 1.0\nContent-Type: message/global\n"
                                   "\nFrom: x@y\nSubject: g\n\nbody\n"))

    def test_message_global_in_an_imap4rev2_session(self):
        with self.session(rev2=True, select="INBOX") as c:
            c.ok("FETCH * (BODY BODYSTRUCTURE)")

    def test_message_global_in_an_imap4rev1_session(self):
        """RFC 3501 section 9 has media-message = "MESSAGE" "RFC822" only, so
        there message/global is body-type-basic (also after the cache holds the
        IMAP4rev2 form)."""
        with self.session(rev2=True, select="INBOX") as c:
            c.ok("FETCH * (BODYSTRUCTURE)")
        with self.session(select="INBOX") as c:
            r = c.ok("FETCH * (BODY BODYSTRUCTURE)")
            self.assertIn(b'("message" "global" NIL NIL NIL "7bit" ', r.untagged[0])

    def test_copyuid_of_a_long_copy(self):
        """COPYUID's sets as ranges, and the tagged OK whole however long."""
        with self.session(select="INBOX") as c:
            r = c.ok("COPY 1:300 Sent")
            self.assertRegex(r.code, r"^COPYUID \d+ 1:300 \d+:\d+$")
            c.ok("COPY " + ",".join(str(n) for n in range(1, 301, 2)) + " Sent")

    def test_copyuid_of_a_long_move(self):
        """The same in MOVE's untagged "* OK [COPYUID ...] Moved"."""
        with self.session(select="INBOX") as c:
            c.ok("MOVE " + ",".join(str(n) for n in range(1, 200, 2)) + " Junk")
            c.ok("MOVE 1:100 Junk")

    def test_flags_with_many_long_keywords(self):
        """"* FLAGS (", "* OK [PERMANENTFLAGS (" and STORE's "* 1 FETCH (FLAGS ("
        lines over 2 KiB, whole (flag-list, flag-perm, msg-att)."""
        name = self.fresh_user(1)
        kws = " ".join(f"k{i:02d}" + "x" * 58 for i in range(40))
        with self.session(user=name, select="INBOX") as c:
            c.ok(f"STORE 1 +FLAGS ({kws})")
            c.ok("SELECT INBOX")

    def test_status_recent_in_an_imap4rev2_session(self):
        """RFC 9051's status-att-val has no RECENT (section 9; removed, Appendix
        E): asked for in an IMAP4rev2 session, it is left out."""
        with self.session(rev2=True) as c:
            r = c.ok("STATUS INBOX (RECENT MESSAGES APPENDLIMIT)")
            self.assertRegex(r.lines()[0], r'^STATUS "?INBOX"? \(MESSAGES \d+ APPENDLIMIT \d+\)$')
        with self.session() as c:
            r = c.ok("STATUS INBOX (RECENT)")
            self.assertRegex(r.lines()[0], r'^STATUS "?INBOX"? \(RECENT \d+\)$')
