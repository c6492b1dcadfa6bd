"""IMAP FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8, 7.4.2; RFC 7162 CHANGEDSINCE
and VANISHED) against the real binary, with Python's imaplib and a raw socket
client that checks every octet of the replies.

Messages get in either over SMTP (smtplib) or as files dropped into the
Maildir's new/ (picked up at SELECT), which lets the tests choose every stored
byte (LF line ends, as buzon stores them) and compare the replies with what
the file says, converted to CRLF.
"""

import imaplib
import os
import re
import smtplib
import socket
import sqlite3
import struct
import time
import unittest

from buzon_test import ALICE, as_service_user, IMAP_LISTENERS, PASSWORD, BuzonTestCase, make_message

SENDER = 'sender@client.example.org'
MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

SIMPLE = (b'From: "Ann Example" <ann@example.org>\n'
          b'To: Bob <bob@example.test>, carol@example.test\n'
          b'Cc: undisclosed-recipients:;\n'
          b'Subject: Hello \\ "world"\n'
          b'Date: Mon, 02 Nov 2026 10:00:00 +0100\n'
          b'Message-ID: <simple@example.org>\n'
          b'In-Reply-To: <parent@example.org>\n'
          b'X-Folded: first\n'
          b'  second\n'
          b'\n'
          b'Line one\n'
          b'Line two\n'
          b'\n'
          b'Last line\n')

MULTI = (b'From: "Ann Example" <ann@example.org>\n'
         b'To: bob@example.test\n'
         b'Subject: multipart test\n'
         b'Date: Mon, 02 Nov 2026 10:00:00 +0100\n'
         b'Message-ID: <multi@example.org>\n'
         b'MIME-Version: 1.0\n'
         b'Content-Type: multipart/mixed; boundary="outer"\n'
         b'\n'
         b'This is the preamble.\n'
         b'--outer\n'
         b'Content-Type: multipart/alternative; boundary=inner\n'
         b'\n'
         b'--inner\n'
         b'Content-Type: text/plain; charset=utf-8\n'
         b'Content-Transfer-Encoding: quoted-printable\n'
         b'\n'
         b'Hello caf=C3=A9\n'
         b'second line\n'
         b'\n'
         b'--inner\n'
         b'Content-Type: text/html; charset="us-ascii"\n'
         b'\n'
         b'<p>Hello</p>\n'
         b'\n'
         b'--inner--\n'
         b'\n'
         b'--outer\n'
         b'Content-Type: application/pdf; name="doc.pdf"\n'
         b'Content-Transfer-Encoding: base64\n'
         b'Content-Disposition: attachment; filename="doc.pdf"\n'
         b'Content-ID: <part3@example.org>\n'
         b'Content-Description: A document\n'
         b'\n'
         b'JVBERi0xLjQKJcfsj6IK\n'
         b'\n'
         b'--outer--\n'
         b'epilogue\n')

MULTI_BODYSTRUCTURE = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 30 2 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 14 1 NIL NIL NIL NIL) "alternative" '
    b'("boundary" "inner") NIL NIL NIL)'
    b'("application" "pdf" ("name" "doc.pdf") "<part3@example.org>" "A document" "base64" 22 NIL '
    b'("attachment" ("filename" "doc.pdf")) NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL)')
MULTI_BODY = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 30 2)'
    b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 14 1) "alternative")'
    b'("application" "pdf" ("name" "doc.pdf") "<part3@example.org>" "A document" "base64" 22) "mixed")')

RFC822 = (b'From: outer@example.org\n'
          b'To: bob@example.test\n'
          b'Subject: forwarded\n'
          b'Date: Tue, 03 Nov 2026 11:00:00 +0000\n'
          b'MIME-Version: 1.0\n'
          b'Content-Type: multipart/mixed; boundary=b1\n'
          b'\n'
          b'--b1\n'
          b'Content-Type: text/plain\n'
          b'\n'
          b'See below.\n'
          b'--b1\n'
          b'Content-Type: message/rfc822\n'
          b'\n'
          b'From: Inner Person <inner@example.net>\n'
          b'To: someone@example.net\n'
          b'Subject: the inner one\n'
          b'Date: Wed, 04 Nov 2026 12:00:00 +0000\n'
          b'Message-ID: <inner@example.net>\n'
          b'\n'
          b'Inner body line 1\n'
          b'Inner body line 2\n'
          b'--b1--\n')

INNER_ENVELOPE = (b'("Wed, 04 Nov 2026 12:00:00 +0000" "the inner one" '
                  b'(("Inner Person" NIL "inner" "example.net")) (("Inner Person" NIL "inner" "example.net")) '
                  b'(("Inner Person" NIL "inner" "example.net")) ((NIL NIL "someone" "example.net")) '
                  b'NIL NIL NIL "<inner@example.net>")')
RFC822_BODYSTRUCTURE = (
    b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
    b'("message" "rfc822" NIL NIL NIL "7bit" 199 ' + INNER_ENVELOPE +
    b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 36 1 NIL NIL NIL NIL) 7 NIL NIL NIL NIL)'
    b' "mixed" ("boundary" "b1") NIL NIL NIL)')
RFC822_BODY = (
    b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0)'
    b'("message" "rfc822" NIL NIL NIL "7bit" 199 ' + INNER_ENVELOPE +
    b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 36 1) 7) "mixed")')


def crlf(data):
    """The CRLF form of stored bytes: a LF not after a CR becomes CRLF."""
    return re.sub(rb'(?<!\r)\n', b'\r\n', data)


def internaldate(t):
    tm = time.localtime(t)
    off = tm.tm_gmtoff // 60
    sign = '-' if off < 0 else '+'
    off = abs(off)
    return '"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (tm.tm_mday, MONTHS[tm.tm_mon - 1], tm.tm_year,
                                                        tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off // 60,
                                                        off % 60)


def fetch_items(resp):
    """'* n FETCH (...)' -> (n, inner bytes)."""
    m = re.match(rb'\* (\d+) FETCH \((.*)\)$', resp, re.S)
    assert m, resp[:300]
    return int(m.group(1)), m.group(2)


class FetchCase(BuzonTestCase):

    def imap_server(self, start=True):
        s = self.new_server(start=False, users=('alice',), listeners=IMAP_LISTENERS)
        md = s.maildir(ALICE)
        for sub in ('new', 'cur', 'tmp'):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        self.count = 0
        if start:
            s.start()
        return s

    def drop(self, s, data, mtime=None, sub='new', info=''):
        """Writes a message file into the Maildir as another MDA would."""
        self.count += 1
        name = '%d.M%dP%dQ%d.other' % (1790000000 + self.count, self.count, os.getpid(), self.count)
        if sub == 'cur':
            name += ':2,' + info
        path = os.path.join(s.maildir(ALICE), sub, name)
        with open(path, 'wb') as f:
            f.write(data)
        as_service_user(path)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def raw(self, s, select='INBOX'):
        c = s.connect_imap(timeout=30.0, binary=True)
        self.addCleanup(c.close)
        c.login()
        if select:
            c.ok('SELECT ' + select)
        return c

    def client(self, s):
        i = imaplib.IMAP4(*s.addr('imap'))
        self.addCleanup(lambda: i.shutdown())
        i.login(ALICE, PASSWORD)
        return i

    def fetch1(self, c, cmd):
        untagged, tagged = c.cmd(cmd)
        self.assertTrue(tagged.startswith(b'OK'), (cmd, tagged))
        fetches = [u for u in untagged if re.match(rb'\* \d+ FETCH ', u)]
        self.assertEqual(len(fetches), 1, untagged)
        return fetch_items(fetches[0])


class Attributes(FetchCase):

    def test_flags_date_size_envelope_uid(self):
        s = self.imap_server()
        t = 1795000000
        self.drop(s, SIMPLE, mtime=t)
        self.drop(s, MULTI, mtime=t + 3600, sub='cur', info='FS')
        c = self.raw(s)
        n, items = self.fetch1(c, 'FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)')
        self.assertEqual(n, 1)
        self.assertEqual(
            items,
            b'UID 1 FLAGS (\\Recent) INTERNALDATE ' + internaldate(t).encode() +
            b' RFC822.SIZE %d ENVELOPE ("Mon, 02 Nov 2026 10:00:00 +0100" "Hello \\\\ \\"world\\"" '
            b'(("Ann Example" NIL "ann" "example.org")) (("Ann Example" NIL "ann" "example.org")) '
            b'(("Ann Example" NIL "ann" "example.org")) '
            b'(("Bob" NIL "bob" "example.test")(NIL NIL "carol" "example.test")) '
            b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL '
            b'"<parent@example.org>" "<simple@example.org>")' % len(crlf(SIMPLE)))
        # The second message: flags from its name, ordering as asked.
        n, items = self.fetch1(c, 'FETCH 2 (RFC822.SIZE FLAGS INTERNALDATE)')
        self.assertEqual(items, b'RFC822.SIZE %d FLAGS (\\Flagged \\Seen \\Recent) INTERNALDATE %s'
                         % (len(crlf(MULTI)), internaldate(t + 3600).encode()))
        # Macros (RFC 3501 6.4.5).
        _, fast = self.fetch1(c, 'FETCH 1 FAST')
        self.assertEqual(fast, b'FLAGS (\\Recent) INTERNALDATE %s RFC822.SIZE %d'
                         % (internaldate(t).encode(), len(crlf(SIMPLE))))
        _, all_ = self.fetch1(c, 'FETCH 1 ALL')
        self.assertTrue(all_.startswith(fast + b' ENVELOPE ("Mon, 02 Nov 2026'), all_)
        _, full = self.fetch1(c, 'FETCH 1 FULL')
        self.assertEqual(full, all_ + b' BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d 4)'
                         % len(crlf(SIMPLE.split(b'\n\n', 1)[1])))
        # The reply is the same from the cache (second FETCH).
        _, again = self.fetch1(c, 'FETCH 1 ALL')
        self.assertEqual(again, all_)
        self.assertEqual(c.ok('FETCH 1:2 UID')[0], [b'* 1 FETCH (UID 1)', b'* 2 FETCH (UID 2)'])

    def test_bodystructure_multipart_and_rfc822(self):
        s = self.imap_server()
        self.drop(s, MULTI)
        self.drop(s, RFC822)
        c = self.raw(s)
        for _ in range(2):      # parsed, then from the cache
            untagged = c.ok('FETCH 1:2 (BODYSTRUCTURE BODY)')[0]
            self.assertEqual(untagged, [
                b'* 1 FETCH (BODYSTRUCTURE ' + MULTI_BODYSTRUCTURE + b' BODY ' + MULTI_BODY + b')',
                b'* 2 FETCH (BODYSTRUCTURE ' + RFC822_BODYSTRUCTURE + b' BODY ' + RFC822_BODY + b')',
            ])
        # BODY never sets \Seen.
        self.assertEqual(c.ok('FETCH 1:2 FLAGS')[0], [b'* 1 FETCH (FLAGS (\\Recent))', b'* 2 FETCH (FLAGS (\\Recent))'])

    def test_numeric_sections(self):
        s = self.imap_server()
        self.drop(s, MULTI)
        self.drop(s, RFC822)
        c = self.raw(s)
        _, items = self.fetch1(c, 'FETCH 1 (BODY.PEEK[1.1] BODY.PEEK[1.2] BODY.PEEK[2] BODY.PEEK[2.MIME] '
                                  'BODY.PEEK[1.1.MIME] BODY.PEEK[3] BODY.PEEK[1.3] BODY.PEEK[2.1])')
        mime2 = (b'Content-Type: application/pdf; name="doc.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
                 b'Content-Disposition: attachment; filename="doc.pdf"\r\nContent-ID: <part3@example.org>\r\n'
                 b'Content-Description: A document\r\n\r\n')
        mime11 = b'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        self.assertEqual(items,
                         b'BODY[1.1] {30}\r\nHello caf=C3=A9\r\nsecond line\r\n '
                         b'BODY[1.2] {14}\r\n<p>Hello</p>\r\n '
                         b'BODY[2] {22}\r\nJVBERi0xLjQKJcfsj6IK\r\n '
                         b'BODY[2.MIME] {%d}\r\n%s '
                         b'BODY[1.1.MIME] {%d}\r\n%s '
                         b'BODY[3] "" BODY[1.3] "" BODY[2.1] ""' % (len(mime2), mime2, len(mime11), mime11))
        # message/rfc822: HEADER and TEXT of the encapsulated message, 2.1 its body.
        _, items = self.fetch1(c, 'FETCH 2 (BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] '
                                  'BODY.PEEK[2.HEADER.FIELDS (subject)] BODY.PEEK[1] BODY.PEEK[1.TEXT])')
        inner_hdr = crlf(RFC822.split(b'message/rfc822\n\n', 1)[1].split(b'\n\n', 1)[0] + b'\n\n')
        self.assertEqual(items,
                         b'BODY[2.HEADER] {%d}\r\n' % len(inner_hdr) + inner_hdr +
                         b' BODY[2.TEXT] {36}\r\nInner body line 1\r\nInner body line 2'
                         b' BODY[2.1] {36}\r\nInner body line 1\r\nInner body line 2'
                         b' BODY[2.HEADER.FIELDS (SUBJECT)] {26}\r\nSubject: the inner one\r\n\r\n'
                         b' BODY[1] {10}\r\nSee below. BODY[1.TEXT] ""')
        # Part 1 of a message that is not multipart is its body.
        self.drop(s, SIMPLE)
        c.ok('NOOP')
        body = crlf(SIMPLE.split(b'\n\n', 1)[1])
        _, items = self.fetch1(c, 'FETCH 3 (BODY.PEEK[1] BODY.PEEK[TEXT])')
        self.assertEqual(items, b'BODY[1] {%d}\r\n%s BODY[TEXT] {%d}\r\n%s' % (len(body), body, len(body), body))

    def test_header_text_fields_and_partials(self):
        s = self.imap_server()
        self.drop(s, SIMPLE)
        c = self.raw(s)
        whole = crlf(SIMPLE)
        hdr, text = whole.split(b'\r\n\r\n', 1)
        hdr += b'\r\n\r\n'
        _, items = self.fetch1(c, 'FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] RFC822.HEADER)')
        self.assertEqual(items, b'BODY[HEADER] {%d}\r\n%s BODY[TEXT] {%d}\r\n%s RFC822.HEADER {%d}\r\n%s'
                         % (len(hdr), hdr, len(text), text, len(hdr), hdr))
        # HEADER.FIELDS: message order, folding kept, names echoed upper-case.
        _, items = self.fetch1(c, 'FETCH 1 (BODY.PEEK[HEADER.FIELDS (x-folded "Subject" To)])')
        want = (b'To: Bob <bob@example.test>, carol@example.test\r\nSubject: Hello \\ "world"\r\n'
                b'X-Folded: first\r\n  second\r\n\r\n')
        self.assertEqual(items, b'BODY[HEADER.FIELDS (X-FOLDED SUBJECT TO)] {%d}\r\n%s' % (len(want), want))
        _, items = self.fetch1(c, 'FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (From To Cc Date Message-ID '
                                  'In-Reply-To X-Folded)]')
        want = b'Subject: Hello \\ "world"\r\n\r\n'
        self.assertEqual(items, b'BODY[HEADER.FIELDS.NOT (FROM TO CC DATE MESSAGE-ID IN-REPLY-TO X-FOLDED)] '
                         b'{%d}\r\n%s' % (len(want), want))
        _, items = self.fetch1(c, 'FETCH 1 BODY.PEEK[HEADER.FIELDS (No-Such-Field)]')
        self.assertEqual(items, b'BODY[HEADER.FIELDS (NO-SUCH-FIELD)] {2}\r\n\r\n')
        # Partials count octets of the CRLF form; the reply names only the start.
        for start, length in ((0, 10), (5, 3), (len(whole) - 4, 100), (37, 1), (38, 1)):
            _, items = self.fetch1(c, 'FETCH 1 BODY.PEEK[]<%d.%d>' % (start, length))
            part = whole[start:start + length]
            self.assertEqual(items, b'BODY[]<%d> {%d}\r\n%s' % (start, len(part), part), (start, length))
        # CR and LF of one converted line end split by a partial.
        lf = whole.index(b'\r\n')
        _, items = self.fetch1(c, 'FETCH 1 (BODY.PEEK[]<%d.1> BODY.PEEK[]<%d.1>)' % (lf, lf + 1))
        self.assertEqual(items, b'BODY[]<%d> {1}\r\n\r BODY[]<%d> {1}\r\n\n' % (lf, lf + 1))
        _, items = self.fetch1(c, 'FETCH 1 BODY.PEEK[]<%d.10>' % len(whole))
        self.assertEqual(items, b'BODY[]<%d> ""' % len(whole))
        _, items = self.fetch1(c, 'FETCH 1 BODY.PEEK[TEXT]<4.7>')
        self.assertEqual(items, b'BODY[TEXT]<4> {7}\r\n' + text[4:11])
        _, items = self.fetch1(c, 'FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]<9.5>')
        self.assertEqual(items, b'BODY[HEADER.FIELDS (SUBJECT)]<9> {5}\r\nHello')
        # Still unseen after all the PEEKs and RFC822.HEADER.
        _, items = self.fetch1(c, 'FETCH 1 FLAGS')
        self.assertEqual(items, b'FLAGS (\\Recent)')

    def test_nul_and_bare_cr(self):
        s = self.imap_server()
        data = b'Subject: odd\n\nnul:\x00: cr:\r: crlf\r\nend\n'
        self.drop(s, data)
        c = self.raw(s)
        _, items = self.fetch1(c, 'FETCH 1 (RFC822.SIZE BODY.PEEK[])')
        want = crlf(data).replace(b'\x00', b'\x80')
        self.assertEqual(items, b'RFC822.SIZE %d BODY[] {%d}\r\n%s' % (len(want), len(want), want))


class Seen(FetchCase):

    def test_seen_set_by_body_not_by_peek(self):
        s = self.imap_server()
        for _ in range(5):
            self.drop(s, SIMPLE)
        c = self.raw(s)
        other = self.raw(s)
        whole = crlf(SIMPLE)
        hdr, text = whole.split(b'\r\n\r\n', 1)
        _, items = self.fetch1(c, 'FETCH 1 BODY.PEEK[]')
        self.assertEqual(items, b'BODY[] {%d}\r\n%s' % (len(whole), whole))
        # A non-PEEK body fetch sets \Seen and reports FLAGS (RFC 3501 6.4.5).
        _, items = self.fetch1(c, 'FETCH 1 BODY[]')
        self.assertEqual(items, b'BODY[] {%d}\r\n%s FLAGS (\\Seen \\Recent)' % (len(whole), whole))
        # Already seen: no FLAGS added.
        _, items = self.fetch1(c, 'FETCH 1 BODY[]<0.4>')
        self.assertEqual(items, b'BODY[]<0> {4}\r\nFrom')
        _, items = self.fetch1(c, 'FETCH 2 (FLAGS RFC822.TEXT)')
        self.assertEqual(items, b'FLAGS (\\Seen \\Recent) RFC822.TEXT {%d}\r\n%s' % (len(text), text))
        _, items = self.fetch1(c, 'FETCH 3 RFC822.HEADER')
        self.assertTrue(items.startswith(b'RFC822.HEADER {%d}' % (len(hdr) + 4)), items[:40])
        _, items = self.fetch1(c, 'FETCH 4 RFC822')
        self.assertEqual(items, b'RFC822 {%d}\r\n%s FLAGS (\\Seen \\Recent)' % (len(whole), whole))
        _, items = self.fetch1(c, 'FETCH 5 BODY[HEADER.FIELDS (SUBJECT)]')
        self.assertTrue(items.endswith(b' FLAGS (\\Seen \\Recent)'), items)
        self.assertEqual(c.ok('FETCH 1:5 FLAGS')[0], [
            b'* 1 FETCH (FLAGS (\\Seen \\Recent))', b'* 2 FETCH (FLAGS (\\Seen \\Recent))',
            b'* 3 FETCH (FLAGS (\\Recent))', b'* 4 FETCH (FLAGS (\\Seen \\Recent))',
            b'* 5 FETCH (FLAGS (\\Seen \\Recent))'])
        # Persisted in the file names (Maildir info) ...
        cur = sorted(os.listdir(os.path.join(s.maildir(ALICE), 'cur')))
        self.assertEqual(sum(1 for n in cur if n.endswith(':2,S')), 4, cur)
        # ... and seen by the other session at its next command.
        untagged = other.ok('NOOP')[0]
        got = sorted(u for u in untagged if b'FETCH' in u)
        self.assertEqual(got, [b'* %d FETCH (FLAGS (\\Seen) UID %d)' % (k, k) for k in (1, 2, 4, 5)])

    def test_examine_sets_no_seen(self):
        s = self.imap_server()
        self.drop(s, SIMPLE)
        c = self.raw(s, select=None)
        c.ok('EXAMINE INBOX')
        whole = crlf(SIMPLE)
        _, items = self.fetch1(c, 'FETCH 1 (BODY[] RFC822.TEXT)')
        self.assertTrue(items.startswith(b'BODY[] {%d}\r\n' % len(whole)), items[:30])
        self.assertNotIn(b'FLAGS', items)
        _, items = self.fetch1(c, 'FETCH 1 FLAGS')
        self.assertEqual(items, b'FLAGS ()')
        self.assertEqual(os.listdir(os.path.join(s.maildir(ALICE), 'cur')), [])


class OverSMTP(FetchCase):

    def test_size_equals_body_for_every_message(self):
        s = self.imap_server()
        bodies = [b'Hello.\r\n', b'.\r\n..\r\n.leading dot\r\n', b'\r\n\r\n  indented\t\r\ncaf\xc3\xa9\r\n',
                  b'x' * 998 + b'\r\nshort\r\n', b'no final newline']
        sent = []
        with smtplib.SMTP(*s.addr('mx')) as smtp:
            for k, body in enumerate(bodies):
                msg = make_message('msg %d' % k, body=body if body.endswith(b'\r\n') else body + b'\r\n')
                smtp.sendmail(SENDER, [ALICE], msg)
                sent.append(msg)
        i = self.client(s)
        typ, data = i.select('INBOX')
        self.assertEqual(data, [b'%d' % len(bodies)])
        typ, data = i.fetch('1:*', '(RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT])')
        self.assertEqual(typ, 'OK')
        msgs = [d for d in data if isinstance(d, tuple)]
        # imaplib splits each response at its literals: (prefix, literal), (prefix, literal), ')'
        self.assertEqual(len(msgs), 2 * len(bodies))
        for k in range(len(bodies)):
            pre1, full = msgs[2 * k]
            pre2, text = msgs[2 * k + 1]
            size = int(re.search(rb'RFC822\.SIZE (\d+)', pre1).group(1))
            self.assertEqual(size, len(full), k)
            # What the client sent is what it gets back, after the trace headers.
            self.assertTrue(full.endswith(sent[k]), (k, full[-200:]))
            self.assertEqual(text, sent[k].split(b'\r\n\r\n', 1)[1])
            self.assertIn(b'BODY[]', pre1)


class UidFetch(FetchCase):

    def test_uid_ranges_and_star(self):
        s = self.imap_server()
        paths = [self.drop(s, make_message('m%d' % k).replace(b'\r\n', b'\n')) for k in range(6)]
        c = self.raw(s)
        # Make a hole: UID 3 goes away.
        os.unlink(paths[2])
        c.ok('NOOP')
        self.assertEqual(c.ok('UID FETCH 1:* FLAGS')[0], [
            b'* %d FETCH (UID %d FLAGS (\\Recent))' % (n, u) for n, u in ((1, 1), (2, 2), (3, 4), (4, 5), (5, 6))])
        with open(paths[1], 'rb') as f:
            size = len(crlf(f.read()))
        self.assertEqual(c.ok('UID FETCH 2:4 (UID RFC822.SIZE)')[0], [
            b'* 2 FETCH (UID 2 RFC822.SIZE %d)' % size, b'* 3 FETCH (UID 4 RFC822.SIZE %d)' % size])
        self.assertEqual(c.ok('UID FETCH 3 FLAGS')[0], [])
        self.assertEqual(c.ok('UID FETCH 4,6 UID')[0], [b'* 3 FETCH (UID 4)', b'* 5 FETCH (UID 6)'])
        # "*" is the highest UID in use, so 100:* is 6:100 (RFC 3501 6.4.8).
        self.assertEqual(c.ok('UID FETCH 100:* UID')[0], [b'* 5 FETCH (UID 6)'])
        self.assertEqual(c.ok('UID FETCH 7:10 UID')[0], [])
        self.assertEqual(c.ok('UID FETCH *:5 UID')[0], [b'* 4 FETCH (UID 5)', b'* 5 FETCH (UID 6)'])
        self.assertEqual(c.ok('FETCH *:4 UID')[0], [b'* 4 FETCH (UID 5)', b'* 5 FETCH (UID 6)'])
        # With imaplib too.
        i = self.client(s)
        i.select('INBOX')
        typ, data = i.uid('FETCH', '4:*', '(FLAGS)')
        self.assertEqual(typ, 'OK')
        self.assertEqual([re.search(rb'UID (\d+)', d).group(1) for d in data], [b'4', b'5', b'6'])

    def test_changedsince_and_vanished(self):
        s = self.imap_server()
        paths = [self.drop(s, SIMPLE) for _ in range(4)]
        c = self.raw(s)
        c.ok('ENABLE QRESYNC')
        untagged = c.ok('FETCH 1:* (MODSEQ)')[0]
        mods = [int(re.search(rb'MODSEQ \((\d+)\)', u).group(1)) for u in untagged]
        top = max(mods)
        self.assertEqual(c.ok('FETCH 1:* (FLAGS) (CHANGEDSINCE %d)' % top)[0], [])
        # \Seen by BODY[] changes the modseq of message 2.
        _, items = self.fetch1(c, 'FETCH 2 BODY[]<0.1>')
        m = re.fullmatch(rb'BODY\[\]<0> \{1\}\r\nF FLAGS \(\\Seen \\Recent\) MODSEQ \((\d+)\)', items)
        self.assertTrue(m, items)
        new = int(m.group(1))
        self.assertGreater(new, top)
        self.assertEqual(c.ok('FETCH 1:* (FLAGS) (CHANGEDSINCE %d)' % top)[0],
                         [b'* 2 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (%d))' % new])
        self.assertEqual(c.ok('UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)' % top)[0],
                         [b'* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (%d))' % new])
        # VANISHED (EARLIER): UIDs of the set expunged since the modseq.
        os.unlink(paths[3])
        untagged = c.ok('NOOP')[0]
        self.assertIn(b'* VANISHED 4', untagged)
        untagged = c.ok('UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)' % top)[0]
        self.assertEqual(untagged, [b'* VANISHED (EARLIER) 4',
                                    b'* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (%d))' % new])
        self.assertEqual(c.ok('UID FETCH 1:3 (FLAGS) (VANISHED CHANGEDSINCE %d)' % top)[0],
                         [b'* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (%d))' % new])
        # VANISHED needs UID FETCH and CHANGEDSINCE.
        self.assertTrue(c.cmd('FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)')[1].startswith(b'BAD'))
        self.assertTrue(c.cmd('UID FETCH 1:* FLAGS (VANISHED)')[1].startswith(b'BAD'))

    def test_vanished_needs_qresync(self):
        s = self.imap_server()
        self.drop(s, SIMPLE)
        c = self.raw(s)
        self.assertTrue(c.cmd('UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)')[1].startswith(b'BAD'))
        # CHANGEDSINCE alone works without ENABLE (it turns CONDSTORE on).
        untagged = c.ok('UID FETCH 1:* FLAGS (CHANGEDSINCE 1)')[0]
        self.assertRegex(untagged[0], rb'^\* 1 FETCH \(UID 1 FLAGS \(\\Recent\) MODSEQ \(\d+\)\)$')


class Errors(FetchCase):

    def test_bad_syntax(self):
        s = self.imap_server()
        self.drop(s, SIMPLE)
        c = self.raw(s)
        for cmd in ['FETCH', 'FETCH 1', 'FETCH 1 (FOO)', 'FETCH 1 FOO', 'FETCH 1 ()', 'FETCH 1 (ALL)',
                    'FETCH 1 (FLAGS FAST)', 'FETCH 1 BODY[HEADER.FIELDS]', 'FETCH 1 BODY[HEADER.FIELDS ()]',
                    'FETCH 1 BODY[0]', 'FETCH 1 BODY[1.0]', 'FETCH 1 BODY[MIME]', 'FETCH 1 BODY[TEXT.1]',
                    'FETCH 1 BODY[]<0.0>', 'FETCH 1 BODY[]<1>', 'FETCH 1 BODY[]x', 'FETCH 1 BODY.PEEK',
                    'FETCH 1 BODY.PEK[]', 'FETCH 1 BINARY[]', 'FETCH 1 RFC822.SIZE[]', 'FETCH 0 FLAGS',
                    'FETCH x FLAGS', 'FETCH 2 FLAGS', 'FETCH 1 FLAGS (CHANGEDSINCE)',
                    'FETCH 1 FLAGS (CHANGEDSINCE x)', 'FETCH 1 FLAGS (FOO)', 'FETCH 1 FLAGS ()',
                    'FETCH 1 FLAGS (CHANGEDSINCE 1) extra', 'UID FETCH 1:x FLAGS']:
            if c.n % 15 == 14:
                c = self.raw(s)     # stay under max_bad_commands
            untagged, tagged = c.cmd(cmd)
            self.assertTrue(tagged.startswith(b'BAD '), (cmd, tagged))
            self.assertEqual([u for u in untagged if b'FETCH' in u], [], cmd)
        # The session still works.
        self.assertEqual(c.ok('FETCH 1 UID')[0], [b'* 1 FETCH (UID 1)'])

    def test_not_selected(self):
        s = self.imap_server()
        c = self.raw(s, select=None)
        self.assertTrue(c.cmd('FETCH 1 FLAGS')[1].startswith(b'BAD'))
        self.assertTrue(c.cmd('UID FETCH 1 FLAGS')[1].startswith(b'BAD'))

    def test_file_gone_behind_our_back(self):
        s = self.imap_server()
        paths = [self.drop(s, SIMPLE) for _ in range(3)]
        c = self.raw(s)
        c.ok('FETCH 1:3 ENVELOPE')      # fills the cache
        os.unlink(paths[1])
        # FETCH may not send EXPUNGE (RFC 3501 7.4.1): message 2 is left out,
        # what needs no file is still answered (RFC 2180 4.1).
        untagged, tagged = c.cmd('FETCH 1:3 (UID BODY.PEEK[HEADER])')
        self.assertEqual(tagged, b'OK [EXPUNGEISSUED] Some messages were already expunged')
        self.assertEqual([fetch_items(u)[0] for u in untagged], [1, 3])
        untagged = c.ok('FETCH 1:3 (UID ENVELOPE)')[0]
        self.assertEqual([fetch_items(u)[0] for u in untagged], [1, 2, 3])
        # NOOP then reports the expunge.
        self.assertIn(b'* 2 EXPUNGE', c.ok('NOOP')[0])


class Streaming(FetchCase):

    def test_large_message_and_many_messages(self):
        s = self.imap_server()
        line = b'0123456789abcdefghijklmnopqrstuvwxyz' * 2 + b'\n'
        big = b'Subject: big\nTo: alice@example.test\n\n' + line * (6 * 1024 * 1024 // len(line))
        self.drop(s, big)
        for k in range(1500):
            self.drop(s, b'Subject: small %d\nFrom: a%d@example.org\n\nbody %d\n' % (k, k, k))
        c = self.raw(s)
        whole = crlf(big)
        _, items = self.fetch1(c, 'FETCH 1 (RFC822.SIZE BODY.PEEK[] UID)')
        self.assertEqual(items, b'RFC822.SIZE %d BODY[] {%d}\r\n%s UID 1' % (len(whole), len(whole), whole))
        start = 3 * 1024 * 1024 + 7
        _, items = self.fetch1(c, 'FETCH 1 BODY.PEEK[TEXT]<%d.1000000>' % start)
        text = whole.split(b'\r\n\r\n', 1)[1]
        self.assertEqual(items, b'BODY[TEXT]<%d> {1000000}\r\n' % start + text[start:start + 1000000])
        untagged = c.ok('FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)')[0]
        self.assertEqual(len(untagged), 1501)
        for k in range(1500):
            h = b'Subject: small %d\r\n\r\n' % k
            size = len(crlf(b'Subject: small %d\nFrom: a%d@example.org\n\nbody %d\n' % (k, k, k)))
            self.assertEqual(untagged[k + 1], b'* %d FETCH (UID %d BODY[HEADER.FIELDS (SUBJECT)] {%d}\r\n%s '
                             b'RFC822.SIZE %d)' % (k + 2, k + 2, len(h), h, size))
        # A client that reads slowly still gets every octet, and the session goes on.
        c.sock.sendall(b'S1 FETCH 1 BODY.PEEK[]\r\nS2 NOOP\r\n')
        time.sleep(0.3)
        r = c.line()
        self.assertEqual(r, b'* 1 FETCH (BODY[] {%d}\r\n%s)' % (len(whole), whole))
        self.assertEqual(c.line(), b'S1 OK Fetch completed')
        self.assertTrue(c.line().startswith(b'S2 OK'))


class Cache(FetchCase):

    def test_cache_rows_follow_messages(self):
        s = self.imap_server()
        paths = [self.drop(s, MULTI) for _ in range(3)]
        c = self.raw(s)
        first = c.ok('FETCH 1:3 (ENVELOPE BODYSTRUCTURE BODY)')[0]
        db = os.path.join(s.maildir(ALICE), 'buzon-index.db')

        def rows():
            con = sqlite3.connect(db, timeout=10)
            try:
                return con.execute('SELECT uid, envelope IS NOT NULL, bodystructure IS NOT NULL, '
                                   'body IS NOT NULL FROM cache ORDER BY uid').fetchall()
            finally:
                con.close()
        self.assertEqual(rows(), [(1, 1, 1, 1), (2, 1, 1, 1), (3, 1, 1, 1)])
        self.assertEqual(c.ok('FETCH 1:3 (ENVELOPE BODYSTRUCTURE BODY)')[0], first)
        # A row dies with its message (expunged behind the server's back here).
        os.unlink(paths[1])
        c.ok('NOOP')
        self.assertEqual(rows(), [(1, 1, 1, 1), (3, 1, 1, 1)])


class DropMidFetch(FetchCase):

    def test_client_drops_while_a_large_fetch_waits_to_drain(self):
        # The session waits for the write queue to drain before it reads
        # more of the body; a client that resets then must not leave the
        # server freeing a session whose command still runs (a BUG() abort
        # before the session runner answered the drain at close).
        s = self.imap_server()
        self.drop(s, b'Subject: big\n\n' + (b'x' * 75 + b'\n') * 60000)   # 4.5 MB
        for _ in range(3):
            c = self.raw(s)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sock.sendall(b'f1 FETCH 1 BODY.PEEK[]\r\n')
            time.sleep(0.3)
            c.sock.recv(1000)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            c.sock.close()
            time.sleep(0.3)
        c = self.raw(s)
        c.ok('NOOP')
        self.assertIsNone(s.proc.poll(), s.log()[-3000:])


if __name__ == '__main__':
    unittest.main()
