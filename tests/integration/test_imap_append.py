"""IMAP APPEND (issue 4): RFC 3501 6.3.11, APPENDUID (RFC 4315), LITERAL+
(RFC 7888) and APPENDLIMIT (RFC 7889), against the real binary with Python's
imaplib and a raw socket client that chooses every octet.

What is checked on disk: the file the APPEND wrote into the folder's cur/
(content byte-exact in stored form, CRLF -> LF; flags in the ":2," info;
mtime = the date-time given), and what the server answers, tagged and
untagged, where the RFCs fix it.
"""

import calendar
import imaplib
import os
import re
import time
import unittest

from buzon_test import ALICE, DOMAIN, IMAP_LISTENERS, PASSWORD, BuzonTestCase, after_tag, scaled

BOB = 'bob@' + DOMAIN
APPENDUID_RE = re.compile(r'^OK \[APPENDUID ([1-9][0-9]*) ([1-9][0-9]*)\] Append completed$')

MSG = (b'From: Sender <sender@client.example.org>\r\n'
       b'To: Alice <alice@example.test>\r\n'
       b'Subject: append test\r\n'
       b'Date: Sat, 28 Nov 2026 18:53:08 +0000\r\n'
       b'\r\n'
       b'line one\r\n'
       b'\r\n'
       b'  indented line\t\r\n'
       b'last line\r\n')


class AppendCase(BuzonTestCase):

    def imap_server(self, imap=None, users=((ALICE, None),)):
        s = self.new_server(start=False, users=False, imap=imap, listeners=IMAP_LISTENERS)
        s.add_domain(DOMAIN)
        for user, quota in users:
            s.add_user(user, quota=quota)
        s.start()
        return s

    def client(self, s, user=ALICE):
        host, port = s.addr('imap')
        c = imaplib.IMAP4(host, port, timeout=scaled(20))
        self.addCleanup(self._logout, c)
        c.login(user, PASSWORD)
        return c

    def raw(self, s, login=True):
        c = s.connect_imap(timeout=10.0)
        self.addCleanup(c.close)
        if login:
            c.login()
        return c

    @staticmethod
    def _logout(c):
        try:
            c.logout()
        except Exception:
            pass

    def cur_files(self, s, folder=None, user=ALICE):
        d = os.path.join(s.maildir(user, folder), 'cur')
        return sorted(os.listdir(d))

    def only_file(self, s, folder=None, user=ALICE):
        names = self.cur_files(s, folder, user)
        self.assertEqual(len(names), 1, names)
        path = os.path.join(s.maildir(user, folder), 'cur', names[0])
        with open(path, 'rb') as f:
            return names[0], f.read(), os.stat(path)

    def appenduid(self, typ, data):
        self.assertEqual(typ, 'OK', data)
        text = 'OK ' + data[-1].decode()
        m = APPENDUID_RE.match(text)
        self.assertIsNotNone(m, text)
        return int(m.group(1)), int(m.group(2))

    def fetch_supported(self, c):
        """FETCH is written by another part of issue 4: used when it is there."""
        try:
            typ, data = c.uid('FETCH', '1:*', '(UID)')
        except imaplib.IMAP4.error:
            return False
        return typ == 'OK'

    # ------------------------------------------------------------------

    def test_append_plain_stored_byte_exact(self):
        s = self.imap_server()
        c = self.client(s)
        before = time.time()
        typ, data = c.append('INBOX', None, None, MSG)
        uidvalidity, uid = self.appenduid(typ, data)
        self.assertEqual(uid, 1, 'the first message of a new mailbox gets UID 1')
        name, content, st = self.only_file(s)
        self.assertEqual(content, MSG.replace(b'\r\n', b'\n'), 'stored form: LF line ends, byte-exact')
        self.assertTrue(name.endswith(':2,'), name)
        self.assertRegex(name, r',S=%d,W=%d:2,$' % (len(content), len(MSG)))
        # no date: INTERNALDATE (the file's mtime) is the time of the APPEND
        self.assertGreaterEqual(st.st_mtime, before - 2)
        self.assertLessEqual(st.st_mtime, time.time() + 2)
        self.assertEqual(os.listdir(os.path.join(s.maildir(ALICE), 'tmp')), [], 'nothing left in tmp/')
        # SELECT agrees with APPENDUID
        typ, data = c.select('INBOX')
        self.assertEqual((typ, data), ('OK', [b'1']))
        self.assertEqual(c.untagged_responses.get('UIDVALIDITY'), [str(uidvalidity).encode()])
        self.assertEqual(c.untagged_responses.get('UIDNEXT'), [str(uid + 1).encode()])
        if self.fetch_supported(c):
            typ, data = c.uid('FETCH', str(uid), '(RFC822.SIZE BODY.PEEK[])')
            self.assertEqual(typ, 'OK', data)
            self.assertEqual(data[0][1], MSG)

    def test_append_flags_date_keywords(self):
        s = self.imap_server()
        c = self.client(s)
        typ, data = c.append('INBOX', r'(\Seen $Label1 \Flagged)', '"01-Feb-2020 10:20:30 +0100"', MSG)
        uidvalidity, uid = self.appenduid(typ, data)
        name, content, st = self.only_file(s)
        self.assertTrue(name.endswith(':2,FS'), name)
        self.assertEqual(int(st.st_mtime), calendar.timegm((2020, 2, 1, 9, 20, 30)))
        self.assertEqual(content, MSG.replace(b'\r\n', b'\n'))
        # a single-digit day with a leading space (date-day-fixed), western zone
        typ, data = c.append('INBOX', r'(\Answered \Draft \Deleted)', '" 7-Jul-1999 23:59:59 -0330"', b'x\r\n')
        uidvalidity2, uid2 = self.appenduid(typ, data)
        self.assertEqual((uidvalidity2, uid2), (uidvalidity, uid + 1), 'UIDs ascend in one UIDVALIDITY')
        files = self.cur_files(s)
        self.assertEqual(len(files), 2)
        other = [f for f in files if f != name][0]
        self.assertTrue(other.endswith(':2,DRT'), other)
        st2 = os.stat(os.path.join(s.maildir(ALICE), 'cur', other))
        self.assertEqual(int(st2.st_mtime), calendar.timegm((1999, 7, 8, 3, 29, 59)))
        c.select('INBOX')
        if self.fetch_supported(c):
            typ, data = c.uid('FETCH', str(uid), '(FLAGS INTERNALDATE)')
            self.assertEqual(typ, 'OK', data)
            text = data[0].decode()
            m = re.search(r'INTERNALDATE "([^"]*)"', text)
            self.assertIsNotNone(m, text)
            tt = imaplib.Internaldate2tuple(('INTERNALDATE "%s"' % m.group(1)).encode())
            self.assertEqual(int(time.mktime(tt)), calendar.timegm((2020, 2, 1, 9, 20, 30)), text)
            flags = re.search(r'FLAGS \(([^)]*)\)', text).group(1).split()
            # \Recent too: this session selected INBOX after the APPEND (RFC 3501 6.3.11)
            self.assertEqual(sorted(flags), sorted(['\\Seen', '\\Flagged', '\\Recent', '$Label1']))

    def test_bad_flags_and_dates(self):
        s = self.imap_server()
        c = self.raw(s)
        cases = [
            ('INBOX (\\Recent)', 'BAD'),
            ('INBOX (\\Unknown)', 'BAD'),
            ('INBOX ((\\Seen))', 'BAD'),
            ('INBOX "32-Jan-2020 10:00:00 +0000"', 'BAD'),
            ('INBOX "29-Feb-2021 10:00:00 +0000"', 'BAD'),
            ('INBOX "01-Foo-2020 10:00:00 +0000"', 'BAD'),
            ('INBOX "01-Jan-2020 24:00:00 +0000"', 'BAD'),
            ('INBOX "01-Jan-2020 10:00:00 0000"', 'BAD'),
            ('INBOX "01-Jan-2020 10:00:00"', 'BAD'),
            ('INBOX (\\Seen) "1-Jan-2020 10:00:00 +0000" "extra"', 'BAD'),
        ]
        for i, (head, want) in enumerate(cases):
            tag = 'b%d' % i
            c.send('%s APPEND %s {3}\r\n' % (tag, head))
            l = c.line().decode()
            if l.startswith('+'):
                c.send(b'x\r\n\r\n')
                t = after_tag(c.until_tagged(tag)[1])
            else:
                t = l[len(tag) + 1:]
            self.assertTrue(t.startswith(want + ' '), '%s -> %r' % (head, t))
        # the message as a quoted string, not a literal
        _, t = c.cmd('APPEND INBOX "Subject: x"', tag='q1')
        self.assertTrue(t.startswith('BAD '), t)
        _, t = c.cmd('APPEND INBOX', tag='q2')
        self.assertTrue(t.startswith('BAD '), t)
        # an empty message: NO, as Dovecot
        _, t = c.append_sync('z1', 'INBOX', b'')
        self.assertTrue(t.startswith('NO '), t)
        # names that would leave the Maildir
        for i, name in enumerate(['"../x"', '"a/b"', '".hidden"', '"a..b"']):
            _, t = c.append_sync('n%d' % i, name, b'x\r\n')
            self.assertTrue(t.startswith('NO '), '%s -> %r' % (name, t))
        self.assertEqual(self.cur_files(s), [], 'nothing may be stored')
        _, t = c.cmd('NOOP', tag='n')
        self.assertTrue(t.startswith('OK'), t)
        # valid ones in the same session still work
        _, t = c.append_sync('ok', 'INBOX () "01-Jan-2020 10:00:00 +0000"', b'x\r\n')
        self.assertRegex(t, APPENDUID_RE)

    def test_trycreate_and_folders(self):
        s = self.imap_server()
        c = self.client(s)
        typ, data = c.append('NoSuchFolder', None, None, MSG)
        self.assertEqual(typ, 'NO')
        self.assertTrue(data[0].startswith(b'[TRYCREATE] '), data)
        # INBOX in any case is INBOX (RFC 3501 5.1)
        typ, data = c.append('inbox', None, None, MSG)
        self.appenduid(typ, data)
        self.only_file(s)
        # a default folder: its own UIDVALIDITY and UID 1
        typ, data = c.append('Sent', r'(\Seen)', None, MSG)
        uv, uid = self.appenduid(typ, data)
        self.assertEqual(uid, 1)
        name, content, _ = self.only_file(s, 'Sent')
        self.assertTrue(name.endswith(':2,S'), name)
        self.assertEqual(content, MSG.replace(b'\r\n', b'\n'))

    def test_literal_too_big(self):
        s = self.imap_server(imap={'max_literal': '10k'})
        c = self.raw(s)
        lines, t = c.cmd('CAPABILITY', tag='c')
        self.assertTrue(t.startswith('OK'), t)
        caps = lines[0].split()
        self.assertIn('APPENDLIMIT=10240', caps, 'RFC 7889: the limit in CAPABILITY')
        # synchronizing literal over the limit: NO [TOOBIG] instead of "+"
        c.send('a1 APPEND INBOX {10241}\r\n')
        l = c.line().decode()
        self.assertRegex(l, r'^a1 NO \[TOOBIG\] ', 'refused before the client sends it')
        _, t = c.cmd('NOOP', tag='a2')
        self.assertTrue(t.startswith('OK'), 'the session goes on: %r' % t)
        # exactly at the limit: accepted
        data = (b'Subject: big\r\n\r\n' + b'y' * 78 + b'\r\n') * 128
        data = data[:10240 - 2] + b'\r\n'
        self.assertEqual(len(data), 10240)
        _, t = c.append_sync('a3', 'INBOX', data)
        self.assertRegex(t, APPENDUID_RE)
        name, content, _ = self.only_file(s)
        self.assertEqual(content, data.replace(b'\r\n', b'\n'))
        # imaplib's view of the same refusal
        ic = self.client(s)
        typ, data = ic.append('INBOX', None, None, b'z' * 20000)
        self.assertEqual(typ, 'NO', data)
        self.assertTrue(data[0].startswith(b'[TOOBIG] '), data)
        # a non-synchronizing literal over the limit cannot be skipped: BYE and close
        c.send('a4 APPEND INBOX {20000+}\r\n')
        self.assertRegex(c.line().decode(), r'^\* BYE ')
        self.assertTrue(c.closed_within(scaled(5)), 'the server closes the connection')
        self.assertEqual(len(self.cur_files(s)), 1)

    def test_literals_share_a_memory_budget(self):
        # [imap] max_buffered bounds the literals all sessions hold at once: one
        # that would go past it is refused before its data (NO [UNAVAILABLE],
        # try again later), and the budget comes back when the command ends.
        s = self.imap_server(imap={'max_literal': '1M', 'max_buffered': '1M'})
        a = self.raw(s)
        b = self.raw(s)
        big = (b'Subject: big\r\n\r\n' + b'x' * 998 + b'\r\n') * 700   # 700,000 octets
        # A announces its literal and gets "+", then sends only half of it
        a.send(b'a1 APPEND INBOX {%d}\r\n' % len(big))
        self.assertTrue(a.line().startswith(b'+'))
        a.send(big[:350000])
        # B's literal does not fit beside it: refused, the session goes on
        b.send(b'b1 APPEND INBOX {400000}\r\n')
        self.assertRegex(b.line().decode(), r'^b1 NO \[UNAVAILABLE\] ')
        _, t = b.cmd('NOOP', tag='b2')
        self.assertTrue(t.startswith('OK'), t)
        # a non-synchronizing one too: its data is read and dropped, not stored
        b.send(b'b3 APPEND INBOX {400000+}\r\n' + b'y' * 400000 + b'\r\n')
        self.assertRegex(b.line().decode(), r'^b3 NO \[UNAVAILABLE\] ')
        _, t = b.cmd('NOOP', tag='b4')
        self.assertTrue(t.startswith('OK'), t)
        # a small one still fits
        _, t = b.append_sync('b5', 'INBOX', b'Subject: small\r\n\r\nhi\r\n')
        self.assertRegex(t, APPENDUID_RE)
        # A finishes: its APPEND is stored, and the budget is free again
        a.send(big[350000:] + b'\r\n')
        _, t = a.until_tagged('a1')
        self.assertRegex(after_tag(t), APPENDUID_RE)
        _, t = b.append_sync('b6', 'INBOX', big[:400000 - 2] + b'\r\n')
        self.assertRegex(t, APPENDUID_RE)
        self.assertEqual(len(self.cur_files(s)), 3)

    def test_literal_plus(self):
        s = self.imap_server()
        c = self.raw(s)
        self.assertIn('LITERAL+', c.greeting.decode().split())
        m1 = b'Subject: one\r\n\r\nfirst\r\n'
        m2 = b'Subject: two\r\n\r\nsecond\r\n'
        # two pipelined APPENDs with non-synchronizing literals, sent at once
        c.send(b'p1 APPEND INBOX (\\Seen) {%d+}\r\n%s\r\np2 APPEND INBOX {%d+}\r\n%s\r\n' %
               (len(m1), m1, len(m2), m2))
        lines1, t1 = c.until_tagged('p1')
        lines2, t2 = c.until_tagged('p2')
        t1, t2 = after_tag(t1), after_tag(t2)
        self.assertFalse(any(l.startswith('+') for l in lines1 + lines2), 'no continuation for {n+}')
        u1 = APPENDUID_RE.match(t1)
        u2 = APPENDUID_RE.match(t2)
        self.assertIsNotNone(u1, t1)
        self.assertIsNotNone(u2, t2)
        self.assertEqual(int(u2.group(2)), int(u1.group(2)) + 1)
        contents = []
        for n in self.cur_files(s):
            with open(os.path.join(s.maildir(ALICE), 'cur', n), 'rb') as f:
                contents.append((n.endswith(':2,S'), f.read()))
        self.assertEqual(sorted(contents), sorted([(True, m1.replace(b'\r\n', b'\n')),
                                                   (False, m2.replace(b'\r\n', b'\n'))]))

    def test_overquota(self):
        s = self.imap_server(users=((ALICE, '2k'),))
        c = self.client(s)
        body = b'Subject: q\r\n\r\n' + b'q' * 1200 + b'\r\n'
        typ, data = c.append('INBOX', None, None, body)
        self.appenduid(typ, data)
        typ, data = c.append('Sent', None, None, body)
        self.assertEqual(typ, 'NO', data)
        self.assertTrue(data[0].startswith(b'[OVERQUOTA] '), data)
        self.assertEqual(self.cur_files(s, 'Sent'), [])
        self.assertEqual(os.listdir(os.path.join(s.maildir(ALICE, 'Sent'), 'tmp')), [])
        # a small one still fits
        typ, data = c.append('Sent', None, None, b'Subject: s\r\n\r\nok\r\n')
        self.appenduid(typ, data)

    def test_overquota_before_the_data(self):
        # The quota is checked when the literal is announced: a message that
        # cannot fit is refused before the client sends it (synchronizing
        # literal: no "+"), or read and dropped (LITERAL+); nothing is stored.
        s = self.imap_server(users=((ALICE, '2k'),))
        c = self.raw(s)
        c.send('a1 APPEND INBOX {5000}\r\n')
        self.assertRegex(c.line().decode(), r'^a1 NO \[OVERQUOTA\] ')
        _, t = c.cmd('NOOP', tag='a2')
        self.assertTrue(t.startswith('OK'), 'the session goes on: %r' % t)
        c.send(b'a3 APPEND INBOX {5000+}\r\n' + b'x' * 5000 + b'\r\n')
        self.assertRegex(c.line().decode(), r'^a3 NO \[OVERQUOTA\] ')
        _, t = c.cmd('NOOP', tag='a4')
        self.assertTrue(t.startswith('OK'), t)
        self.assertEqual(self.cur_files(s), [])
        # one that fits gets its "+" and is stored
        _, t = c.append_sync('a5', 'INBOX', b'Subject: fits\r\n\r\nsmall\r\n')
        self.assertRegex(t, APPENDUID_RE)
        self.assertEqual(len(self.cur_files(s)), 1)

    def test_exists_in_selected_mailbox(self):
        s = self.imap_server()
        c = self.raw(s)
        lines, t = c.cmd('SELECT INBOX', tag='s')
        self.assertIn('* 0 EXISTS', lines)
        self.assertTrue(t.startswith('OK [READ-WRITE]'), t)
        # a second session idles on INBOX and must hear of the APPEND
        idler = self.raw(s)
        _, t = idler.cmd('SELECT INBOX', tag='s')
        self.assertTrue(t.startswith('OK'), t)
        idler.send('i IDLE\r\n')
        self.assertTrue(idler.line().decode().startswith('+'))
        lines, t = c.append_sync('a', 'INBOX', MSG)
        self.assertRegex(t, APPENDUID_RE)
        self.assertIn('* 1 EXISTS', lines, 'the selected mailbox shows the new message before the OK')
        # \Recent goes to exactly one session (RFC 3501 2.3.2): the idler's
        # own refresh may claim it first, so either count is right here.
        self.assertTrue(any(l in ('* 1 RECENT', '* 0 RECENT') for l in lines), lines)
        # another folder does not change the selected one
        lines, t = c.append_sync('b', 'Drafts', MSG)
        self.assertRegex(t, APPENDUID_RE)
        self.assertFalse(any('EXISTS' in l for l in lines), lines)
        idler.sock.settimeout(scaled(5))
        self.assertEqual(idler.line().decode(), '* 1 EXISTS', 'IDLE hears of the APPEND')
        idler.send('DONE\r\n')
        t = after_tag(idler.until_tagged('i')[1])
        self.assertTrue(t.startswith('OK'), t)

    def test_8bit_nul_and_bare_cr(self):
        s = self.imap_server()
        c = self.raw(s)
        eight = (b'Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n'
                 b'Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9 \xe2\x82\xac latin1 \xe9\xff\r\n')
        _, t = c.append_sync('e', 'INBOX', eight)
        self.assertRegex(t, APPENDUID_RE)
        _, content, _ = self.only_file(s)
        self.assertEqual(content, eight.replace(b'\r\n', b'\n'))
        # NUL: refused, nothing stored
        _, t = c.append_sync('n', 'INBOX', b'Subject: nul\r\n\r\na\x00b\r\n')
        self.assertTrue(t.startswith('NO '), t)
        self.assertEqual(len(self.cur_files(s)), 1)
        # a bare CR and a bare LF stay as they are; only CRLF becomes LF
        odd = b'Subject: cr\r\n\r\na\rb\nc\r\r\nd\r'
        _, t = c.append_sync('r', 'Drafts', odd)
        self.assertRegex(t, APPENDUID_RE)
        _, content, _ = self.only_file(s, 'Drafts')
        self.assertEqual(content, b'Subject: cr\n\na\rb\nc\r\nd\r')

    def test_not_authenticated(self):
        s = self.imap_server()
        c = self.raw(s, login=False)
        c.send('a APPEND INBOX {3}\r\n')
        l = c.line().decode()
        if l.startswith('+'):
            c.send('x\r\n\r\n')
            t = after_tag(c.until_tagged('a')[1])
        else:
            t = l[2:]
        self.assertTrue(t.startswith('BAD ') or t.startswith('NO '), t)
        self.assertEqual(self.cur_files(s), [])


if __name__ == '__main__':
    unittest.main()
