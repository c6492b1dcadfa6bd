"""IMAP SEARCH and UID SEARCH (issue 4): every RFC 3501 6.4.4 key, nested
OR/NOT and parenthesised groups, MIME decoding (encoded words in UTF-8 and
ISO-8859-1, base64 and quoted-printable bodies, charsets), CHARSET with a
literal, ESEARCH (RFC 4731), SEARCHRES (RFC 5182), the CONDSTORE MODSEQ key
(RFC 7162) and the errors (BAD, NO [BADCHARSET]).

One server for the whole file: messages are written into the Maildir (cur/
with flags in the name and a chosen mtime, which becomes INTERNALDATE) and
one more is delivered over SMTP. Python's imaplib talks to the real binary.
"""

import base64
import imaplib
import os
import smtplib
import sqlite3
import time
import unittest

from buzon_test import IMAP_LISTENERS, PASSWORD, Server, scaled

ALICE = 'alice@example.test'
SENDER = 'sender@client.example.org'


def ts(y, m, d, hh=12):
    return int(time.mktime((y, m, d, hh, 0, 0, 0, 0, -1)))


B64_TEXT = base64.encodebytes('Привет, мир! Secret code: ZEBRA-42\n'.encode('utf-8')).decode()
B64_ATTACH = base64.encodebytes(b'attachment-marker inside the zip\n').decode()

# (file name, message (LF line ends), mtime); flags are in the file name.
MESSAGES = [
    ('1700000001.M1P1.test:2,S',
     'From: Alice Example <alice@example.org>\n'
     'To: Bob <bob@example.test>\n'
     'Cc: Carol <carol@example.test>\n'
     'Subject: Meeting tomorrow\n'
     'Date: Mon, 02 Feb 2026 10:00:00 +0000\n'
     'X-Priority: 3\n'
     '\n'
     'Let us meet at noon in the blue room.\n',
     ts(2026, 2, 2)),
    ('1700000002.M2P1.test:2,RS',
     'From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>\n'
     'To: alice@example.test\n'
     'Subject: =?UTF-8?B?w5xiZXJwcsO8ZnVuZyBkZXIgUmVjaG51bmc=?=\n'
     'Date: Tue, 10 Mar 2026 23:30:00 -0800\n'
     'MIME-Version: 1.0\n'
     'Content-Type: text/plain; charset=iso-8859-1\n'
     'Content-Transfer-Encoding: quoted-printable\n'
     '\n'
     'Gr=FC=DFe aus K=F6ln, die Stra=DFe ist gesperrt.=\n'
     ' Ende.\n',
     ts(2026, 3, 10)),
    ('1700000003.M3P1.test:2,DF',
     'From: Dave <dave@example.net>\n'
     'To: alice@example.test\n'
     'Bcc: hidden-person@example.net\n'
     'Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=\n'
     'Date: 15 Apr 26 08:00 +0200\n'
     'MIME-Version: 1.0\n'
     'Content-Type: multipart/mixed; boundary="b1"\n'
     '\n'
     'preamble\n'
     '--b1\n'
     'Content-Type: text/plain; charset=utf-8\n'
     'Content-Transfer-Encoding: base64\n'
     '\n' + B64_TEXT +
     '--b1\n'
     'Content-Type: application/octet-stream; name="a.bin"\n'
     'Content-Transfer-Encoding: base64\n'
     '\n' + B64_ATTACH +
     '--b1--\n',
     ts(2026, 4, 15)),
    ('1700000004.M4P1.test:2,T',
     'From: Reports <reports@example.com>\n'
     'To: alice@example.test\n'
     'Subject: Large report\n'
     'X-Custom-Header: Alpha-Beta\n'
     '\n' + ('lorem ipsum dolor sit amet\n' * 300),
     ts(2026, 5, 1)),
]

FRESH = ('From: Sender <sender@client.example.org>\r\n'
         'To: alice@example.test\r\n'
         'Subject: Fresh news\r\n'
         'Date: Fri, 01 May 2026 09:00:00 +0000\r\n'
         '\r\n'
         'fresh body text\r\n')


def vsize(text):
    """RFC822.SIZE of a message stored with LF line ends."""
    return len(text.encode('utf-8')) + text.count('\n')


class SearchTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        s = cls.server = Server()
        s.write_config(listeners=IMAP_LISTENERS)
        s.setup_users()
        s.start()
        md = s.maildir(ALICE)
        for sub in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        for name, msg, mtime in MESSAGES:
            path = os.path.join(md, 'cur', name)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(msg)
            os.utime(path, (mtime, mtime))
        # A first session takes \Recent of messages 1-4.
        m = cls.connect()
        m.select('INBOX')
        # Keywords: STORE when it is there; else written into the index
        # while no session has the mailbox open.
        cls.keywords_by_store = False
        try:
            typ, _ = m.store('1,3', '+FLAGS', '(Project $Important)')
            cls.keywords_by_store = typ == 'OK'
        except imaplib.IMAP4.error:
            pass
        m.logout()
        if not cls.keywords_by_store:
            db = sqlite3.connect(os.path.join(md, 'buzon-index.db'))
            db.execute("UPDATE messages SET keywords = 'Project $Important' WHERE uid IN (1, 3)")
            db.commit()
            db.close()
        # Message 5 comes over SMTP: \Recent for the next session.
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(30)) as c:
            refused = c.sendmail(SENDER, [ALICE], FRESH.encode())
        assert refused == {}
        cls.m = cls.connect()
        typ, data = cls.m.select('INBOX')
        assert typ == 'OK' and data == [b'5'], (typ, data)

    @classmethod
    def connect(cls):
        host, port = cls.server.addr('imap')
        m = imaplib.IMAP4(host, port, timeout=scaled(30))
        m.login(ALICE, PASSWORD)
        return m

    @classmethod
    def tearDownClass(cls):
        s = cls.server
        try:
            cls.m.logout()
        except Exception:
            pass
        rc = s.stop()
        reports = s.sanitizer_reports()
        s.cleanup()
        if rc != 0 or reports:
            raise AssertionError('server exit %s; sanitizer reports:\n%s' % (rc, '\n'.join(reports)))

    # -- helpers -------------------------------------------------------------

    def search(self, *keys, uid=False):
        """SEARCH or UID SEARCH; returns the numbers as a list of ints."""
        self.m.untagged_responses.clear()
        if uid:
            typ, data = self.m.uid('SEARCH', *keys)
        else:
            typ, data = self.m.search(None, *keys)
        self.assertEqual(typ, 'OK', data)
        self.assertEqual(len(data), 1, data)
        return [int(x) for x in data[0].split()]

    def raw(self, *args, name='SEARCH', m=None):
        """Sends a command; returns (status, tagged text, {untagged type: [data]}, tag)."""
        m = m or self.m
        m.untagged_responses.clear()
        tag = m._command(name, *args)
        try:
            typ, data = m._command_complete(name, tag)
        except imaplib.IMAP4.error as e:
            m.untagged_responses.clear()
            return 'BAD', str(e), {}, tag
        text = data[-1].decode() if data and data[-1] else ''
        untagged = {k: list(v) for k, v in m.untagged_responses.items()}
        m.untagged_responses.clear()
        return typ, text, untagged, tag

    def assertBad(self, *args, name='SEARCH', m=None):
        """A BAD reply, on a connection of its own (BADs are counted per session)."""
        own = m is None
        if own:
            m = self.connect()
            m.select('INBOX')
        try:
            r = self.raw(*args, name=name, m=m)
            self.assertEqual(r[0], 'BAD', r)
            self.assertIn('command error: BAD', r[1])
            if own:
                self.assertEqual(m.noop()[0], 'OK')
        finally:
            if own:
                m.logout()

    # -- tests ---------------------------------------------------------------

    def test_all_and_sequence_sets(self):
        self.assertEqual(self.search('ALL'), [1, 2, 3, 4, 5])
        self.assertEqual(self.search('2:4'), [2, 3, 4])
        self.assertEqual(self.search('*'), [5])
        self.assertEqual(self.search('4:*'), [4, 5])
        self.assertEqual(self.search('1,3,5'), [1, 3, 5])
        self.assertEqual(self.search('*:3'), [3, 4, 5])
        self.assertEqual(self.search('2:3', '3:4'), [3])

    def test_flags(self):
        self.assertEqual(self.search('SEEN'), [1, 2])
        self.assertEqual(self.search('UNSEEN'), [3, 4, 5])
        self.assertEqual(self.search('ANSWERED'), [2])
        self.assertEqual(self.search('UNANSWERED'), [1, 3, 4, 5])
        self.assertEqual(self.search('FLAGGED'), [3])
        self.assertEqual(self.search('UNFLAGGED'), [1, 2, 4, 5])
        self.assertEqual(self.search('DELETED'), [4])
        self.assertEqual(self.search('UNDELETED'), [1, 2, 3, 5])
        self.assertEqual(self.search('DRAFT'), [3])
        self.assertEqual(self.search('UNDRAFT'), [1, 2, 4, 5])
        self.assertEqual(self.search('RECENT'), [5])
        self.assertEqual(self.search('NEW'), [5])
        self.assertEqual(self.search('OLD'), [1, 2, 3, 4])
        self.assertEqual(self.search('seen', 'unDeleted'), [1, 2])

    def test_keywords(self):
        self.assertEqual(self.search('KEYWORD', 'Project'), [1, 3])
        self.assertEqual(self.search('KEYWORD', 'project'), [1, 3])
        self.assertEqual(self.search('KEYWORD', '$Important'), [1, 3])
        self.assertEqual(self.search('KEYWORD', 'Nothing'), [])
        self.assertEqual(self.search('UNKEYWORD', 'Project'), [2, 4, 5])

    def test_sizes(self):
        md = self.server.maildir(ALICE)
        fresh = [os.path.join(md, d, n) for d in ('new', 'cur') for n in os.listdir(os.path.join(md, d))
                 if not n.startswith('17000000')]
        self.assertEqual(len(fresh), 1, fresh)
        with open(fresh[0], 'rb') as f:
            stored = f.read()
        sizes = [vsize(m[1]) for m in MESSAGES] + [len(stored) + stored.count(b'\n') - stored.count(b'\r\n')]
        big = sizes[3]
        self.assertEqual(self.search('LARGER', str(big - 1)), [4])
        self.assertEqual(self.search('LARGER', str(big)), [])
        self.assertEqual(self.search('SMALLER', str(big)), [1, 2, 3, 5])
        for n in sorted(set(sizes)):
            self.assertEqual(self.search('SMALLER', str(n)), [i + 1 for i, v in enumerate(sizes) if v < n])
            self.assertEqual(self.search('LARGER', str(n)), [i + 1 for i, v in enumerate(sizes) if v > n])
        self.assertEqual(self.search('SMALLER', '1'), [])
        self.assertEqual(self.search('LARGER', '0'), [1, 2, 3, 4, 5])

    def test_internaldate(self):
        self.assertEqual(self.search('ON', '10-Mar-2026'), [2])
        self.assertEqual(self.search('ON', '"2-Feb-2026"'), [1])
        self.assertEqual(self.search('ON', '02-feb-2026'), [1])
        self.assertEqual(self.search('BEFORE', '10-Mar-2026'), [1])
        self.assertEqual(self.search('BEFORE', '11-Mar-2026'), [1, 2])
        self.assertEqual(self.search('SINCE', '15-Apr-2026'), [3, 4, 5])
        self.assertEqual(self.search('SINCE', '16-Apr-2026', 'BEFORE', '1-Jan-2030'), [4, 5])
        today = time.strftime('%d-%b-%Y', time.localtime())
        self.assertEqual(self.search('ON', today), [5])

    def test_sent_dates(self):
        # Date: as written, time and zone disregarded (23:30 -0800 is still 10-Mar).
        self.assertEqual(self.search('SENTON', '10-Mar-2026'), [2])
        self.assertEqual(self.search('SENTON', '15-Apr-2026'), [3])     # two-digit year
        self.assertEqual(self.search('SENTBEFORE', '10-Mar-2026'), [1])
        self.assertEqual(self.search('SENTSINCE', '15-Apr-2026'), [3, 5])
        # Message 4 has no Date: it matches no SENT* key.
        self.assertEqual(self.search('NOT', 'SENTSINCE', '1-Jan-1900'), [4])
        self.assertEqual(self.search('SENTBEFORE', '1-Jan-2100'), [1, 2, 3, 5])

    def test_header_keys(self):
        self.assertEqual(self.search('FROM', 'alice@example.org'), [1])
        self.assertEqual(self.search('FROM', '"ALICE EXAMPLE"'), [1])
        self.assertEqual(self.search('TO', 'bob'), [1])
        self.assertEqual(self.search('TO', 'alice@example.test'), [2, 3, 4, 5])
        self.assertEqual(self.search('CC', 'carol'), [1])
        self.assertEqual(self.search('BCC', 'hidden-person'), [3])
        self.assertEqual(self.search('SUBJECT', 'meeting'), [1])
        self.assertEqual(self.search('SUBJECT', '"large REPORT"'), [4])
        self.assertEqual(self.search('HEADER', 'X-Custom-Header', 'alpha-beta'), [4])
        self.assertEqual(self.search('HEADER', 'x-priority', '3'), [1])
        # An empty string matches every message with the field.
        self.assertEqual(self.search('HEADER', 'X-Custom-Header', '""'), [4])
        self.assertEqual(self.search('HEADER', 'Bcc', '""'), [3])
        self.assertEqual(self.search('HEADER', 'Message-ID', 'nothing-like-this'), [])

    def test_encoded_words(self):
        # ISO-8859-1 Q encoding in From and Subject, UTF-8 B encoding in Subject.
        self.m.literal = 'Müller'.encode('utf-8')
        typ, data = self.m.search('UTF-8', 'FROM')
        self.assertEqual((typ, data), ('OK', [b'2']))
        self.m.literal = 'überprüfung'.encode('utf-8')
        typ, data = self.m.search('UTF-8', 'SUBJECT')
        self.assertEqual((typ, data), ('OK', [b'2']))   # case folded: Ü and ü
        self.m.literal = 'CAFÉ CRÈME'.encode('utf-8')
        typ, data = self.m.search('UTF-8', 'SUBJECT')
        self.assertEqual((typ, data), ('OK', [b'3']))
        # The encoded form is not what is searched.
        self.assertEqual(self.search('SUBJECT', 'w5xiZXJwcsO8ZnVuZyBkZXIgUmVjaG51bmc'), [])
        self.assertEqual(self.search('SUBJECT', 'Rechnung'), [2])

    def test_body_decoding(self):
        self.assertEqual(self.search('BODY', 'noon'), [1])
        self.assertEqual(self.search('BODY', 'ZEBRA-42'), [3])           # base64
        self.assertEqual(self.search('BODY', 'zebra'), [3])
        self.assertEqual(self.search('BODY', 'attachment-marker'), [3])  # base64 attachment
        self.assertEqual(self.search('BODY', 'ZW5kYQ'), [])
        self.assertEqual(self.search('BODY', '"gesperrt. Ende"'), [2])     # QP soft break
        self.assertEqual(self.search('BODY', '"=FC"'), [])
        self.m.literal = 'grüße aus köln'.encode('utf-8')                 # QP + ISO-8859-1
        typ, data = self.m.search('UTF-8', 'BODY')
        self.assertEqual((typ, data), ('OK', [b'2']))
        self.m.literal = 'ПРИВЕТ, МИР'.encode('utf-8')                     # base64 UTF-8, Cyrillic case
        typ, data = self.m.search('UTF-8', 'BODY')
        self.assertEqual((typ, data), ('OK', [b'3']))
        # BODY does not look at the header; TEXT looks at both.
        self.assertEqual(self.search('BODY', 'Meeting'), [])
        self.assertEqual(self.search('TEXT', 'Meeting'), [1])
        self.assertEqual(self.search('TEXT', '"blue room"'), [1])
        self.assertEqual(self.search('TEXT', 'hidden-person'), [3])
        self.m.literal = 'Jörg'.encode('utf-8')
        typ, data = self.m.search('UTF-8', 'TEXT')
        self.assertEqual((typ, data), ('OK', [b'2']))

    def test_charset_us_ascii_and_badcharset(self):
        typ, data = self.m.search('US-ASCII', 'SUBJECT', 'meeting')
        self.assertEqual((typ, data), ('OK', [b'1']))
        typ, data = self.m.search('utf-8', 'SUBJECT', 'meeting')
        self.assertEqual((typ, data), ('OK', [b'1']))
        r = self.raw('CHARSET', 'KOI8-R', 'SUBJECT', 'x')
        self.assertEqual(r[:2], ('NO', '[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset'))

    def test_or_not_groups(self):
        self.assertEqual(self.search('OR', 'FLAGGED', 'ANSWERED'), [2, 3])
        self.assertEqual(self.search('NOT', 'SEEN'), [3, 4, 5])
        self.assertEqual(self.search('NOT', 'NOT', 'SEEN'), [1, 2])
        self.assertEqual(self.search('OR', '(SEEN', 'ANSWERED)', 'DELETED'), [2, 4])
        self.assertEqual(self.search('OR', 'OR', 'SUBJECT', 'meeting', 'BODY', 'zebra', 'DELETED'), [1, 3, 4])
        self.assertEqual(self.search('NOT', '(OR', 'SEEN', '(DRAFT', 'FLAGGED))'), [4, 5])
        self.assertEqual(self.search('(((SUBJECT', 'report)))'), [4])
        self.assertEqual(self.search('NOT', 'OR', 'BODY', 'noon', 'NOT', 'UNSEEN'), [3, 4, 5])
        self.assertEqual(self.search('OR', 'HEADER', 'X-Custom-Header', 'alpha', 'TEXT', 'fresh', 'UNDELETED'), [5])

    def test_uid_search(self):
        self.assertEqual(self.search('ALL', uid=True), [1, 2, 3, 4, 5])
        self.assertEqual(self.search('UID', '2:3'), [2, 3])
        self.assertEqual(self.search('UID', '4:*', uid=True), [4, 5])
        self.assertEqual(self.search('UID', '9:*', uid=True), [5])     # "*" is the highest UID
        self.assertEqual(self.search('SEEN', uid=True), [1, 2])
        self.assertEqual(self.search('5', uid=True), [5])                 # sequence set, still seq numbers
        self.assertEqual(self.search('UID', '1,5', 'NOT', 'SEEN'), [5])

    def test_esearch(self):
        typ, text, u, tag = self.raw('RETURN', '(MIN MAX COUNT ALL)', 'UNSEEN')
        self.assertEqual(typ, 'OK')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") MIN 3 MAX 5 ALL 3:5 COUNT 3' % tag.decode()).encode()])
        self.assertNotIn('SEARCH', u)
        typ, text, u, tag = self.raw('RETURN', '()', 'OR', 'SEEN', 'DELETED')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") ALL 1:2,4' % tag.decode()).encode()])
        typ, text, u, tag = self.raw('RETURN', '(COUNT)', 'KEYWORD', 'nothing')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") COUNT 0' % tag.decode()).encode()])
        typ, text, u, tag = self.raw('RETURN', '(MIN MAX)', 'KEYWORD', 'nothing')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s")' % tag.decode()).encode()])
        typ, text, u, tag = self.raw('SEARCH', 'RETURN', '(MAX COUNT)', 'CHARSET', 'UTF-8', 'SEEN', name='UID')
        self.assertEqual(typ, 'OK')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") UID MAX 2 COUNT 2' % tag.decode()).encode()])
        self.assertBad('RETURN', '(BOGUS)', 'ALL')
        self.assertBad('RETURN', 'ALL', 'ALL')

    def test_searchres_save(self):
        typ, text, u, tag = self.raw('RETURN', '(SAVE)', 'OR', 'FLAGGED', 'DELETED')
        self.assertEqual(typ, 'OK')
        self.assertNotIn('ESEARCH', u)            # SAVE alone: no ESEARCH (RFC 5182 2.1)
        self.assertNotIn('SEARCH', u)
        self.assertEqual(self.search('$'), [3, 4])
        self.assertEqual(self.search('UID', '$', uid=True), [3, 4])
        self.assertEqual(self.search('NOT', '$'), [1, 2, 5])
        # SAVE with MIN saves just the minimum; ESEARCH still answers MIN.
        typ, text, u, tag = self.raw('SEARCH', 'RETURN', '(SAVE MIN)', 'UNSEEN', name='UID')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") UID MIN 3' % tag.decode()).encode()])
        self.assertEqual(self.search('$'), [3])
        # SAVE with ALL saves everything.
        typ, text, u, tag = self.raw('RETURN', '(SAVE ALL)', 'SEEN')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") ALL 1:2' % tag.decode()).encode()])
        self.assertEqual(self.search('$', 'ALL'), [1, 2])
        # A failing SEARCH with SAVE empties it.
        r = self.raw('RETURN', '(SAVE)', 'CHARSET', 'X-UNKNOWN', 'ALL')
        self.assertEqual(r[0], 'NO')
        self.assertEqual(self.search('$'), [])

    def test_modseq(self):
        db = sqlite3.connect(os.path.join(self.server.maildir(ALICE), 'buzon-index.db'))
        rows = dict(db.execute('SELECT uid, modseq FROM messages').fetchall())
        db.close()
        self.assertEqual(sorted(rows), [1, 2, 3, 4, 5])
        pivot = sorted(set(rows.values()))[len(set(rows.values())) // 2]
        want = [u for u in sorted(rows) if rows[u] >= pivot]
        top = max(rows[u] for u in want)
        typ, data = self.m.search(None, 'MODSEQ', str(pivot))
        self.assertEqual(typ, 'OK')
        self.assertEqual(data, [(' '.join(map(str, want)) + ' (MODSEQ %d)' % top).encode()])
        typ, data = self.m.search(None, 'MODSEQ', '"/flags/\\\\draft"', 'all', str(pivot))
        self.assertEqual(data, [(' '.join(map(str, want)) + ' (MODSEQ %d)' % top).encode()])
        # No match: no MODSEQ (RFC 7162 3.1.5).
        self.assertEqual(self.search('MODSEQ', str(max(rows.values()) + 1)), [])
        typ, text, u, tag = self.raw('RETURN', '(COUNT)', 'MODSEQ', '0')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") COUNT 5 MODSEQ %d' % (tag.decode(), max(rows.values())))
                                            .encode()])
        # MIN or MAX alone: the modseq of that message (RFC 4731 3.2).
        typ, text, u, tag = self.raw('RETURN', '(MIN)', 'MODSEQ', '0')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") MIN 1 MODSEQ %d' % (tag.decode(), rows[1])).encode()])
        typ, text, u, tag = self.raw('SEARCH', 'RETURN', '(MAX)', 'MODSEQ', '0', name='UID')
        self.assertEqual(u.get('ESEARCH'), [('(TAG "%s") UID MAX 5 MODSEQ %d' % (tag.decode(), rows[5])).encode()])
        self.assertBad('MODSEQ', 'abc')

    def test_syntax_errors(self):
        m = None
        for i, args in enumerate((('FOO',), ('SUBJECT',), ('BEFORE', '31-Feb-2026'), ('BEFORE', '2026-02-01'),
                     ('ON', '1-Foo-2026'), ('LARGER', 'x'), ('LARGER', '-1'), ('OR', 'SEEN'), ('NOT',),
                     ('UID', 'abc'), ('1:x',), ('0',), ('()',), ('HEADER', 'X-A'), ('KEYWORD', '\\Seen'),
                     ('CHARSET',), ('CHARSET', 'UTF-8'), ('BODY[]', 'x'), ('SINCE', '1-Jan-26'),
                     ('SENTON', '"1 Jan 2026"'), ('MODSEQ', '"/flags/\\\\seen"', 'bogus', '1'),
                     ('UNKEYWORD',), (' '.join(['NOT'] * 70) + ' ALL',), ())):
            if i % 10 == 0:
                if m:
                    m.logout()
                m = self.connect()
                m.select('INBOX')
            with self.subTest(args=args):
                self.assertBad(*args, m=m)
        self.assertEqual(m.noop()[0], 'OK')
        m.logout()
        # The session goes on after errors.
        self.assertEqual(self.search('ALL'), [1, 2, 3, 4, 5])

    def test_reads_only_what_the_keys_need(self):
        """Flag/size/date keys open no file; header keys read the header only;
        BODY reads the whole file (measured with /proc/PID/io rchar)."""
        io_path = '/proc/%d/io' % self.server.proc.pid
        if not os.path.exists(io_path):
            self.skipTest('no /proc/PID/io')
        folder = self.server.maildir(ALICE, 'Big')
        for sub in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        body = ('%07d filler line of the big message, nothing to see\n' * 80000) % tuple(range(80000))
        with open(os.path.join(folder, 'cur', '1700000100.M1P1.test:2,S'), 'w') as f:
            f.write('From: big@example.com\nSubject: the big one\n\n' + body + 'needle-at-the-end\n')
        size = os.path.getsize(os.path.join(folder, 'cur', '1700000100.M1P1.test:2,S'))
        self.assertGreater(size, 4000000)
        m = self.connect()
        try:
            self.assertEqual(m.select('Big'), ('OK', [b'1']))

            def rchar():
                with open(io_path) as f:
                    return int(dict(l.split(': ') for l in f.read().splitlines())['rchar'])

            def cost(*keys):
                before = rchar()
                typ, data = m.search(None, *keys)
                self.assertEqual(typ, 'OK')
                return rchar() - before, data

            for keys in (('SEEN', 'LARGER', '1000', 'SINCE', '1-Jan-2000', 'UID', '1:*'),
                         ('NOT', 'FLAGGED', 'BEFORE', '1-Jan-2100', 'SMALLER', '100000000')):
                n, data = cost(*keys)
                self.assertEqual(data, [b'1'])
                self.assertLess(n, 200000, 'index-only keys read %d bytes' % n)
            n, data = cost('SUBJECT', 'big', 'FROM', 'big@', 'SENTBEFORE', '1-Jan-2100')
            self.assertEqual(data, [b''])    # no Date: SENTBEFORE fails, but the header was read
            n, data = cost('SUBJECT', 'big', 'FROM', 'big@')
            self.assertEqual(data, [b'1'])
            self.assertLess(n, 300000, 'header keys read %d bytes' % n)
            # An AND that fails on a flag does not open the file for BODY.
            n, data = cost('FLAGGED', 'BODY', 'needle-at-the-end')
            self.assertEqual(data, [b''])
            self.assertLess(n, 200000)
            n, data = cost('BODY', 'needle-at-the-end')
            self.assertEqual(data, [b'1'])
            self.assertGreaterEqual(n, size)
        finally:
            m.logout()

    def test_empty_result(self):
        self.assertEqual(self.search('SUBJECT', 'no-such-subject'), [])
        typ, text, u, tag = self.raw('SUBJECT', 'no-such-subject')
        self.assertEqual(u.get('SEARCH'), [b''])


if __name__ == '__main__':
    unittest.main(verbosity=2)
