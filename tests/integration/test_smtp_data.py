"""DATA: end-of-data only at CRLF.CRLF (no SMTP smuggling), bare newlines,
line length limits, message size limits."""

import os
import unittest

from buzon_test import BuzonTestCase, make_message, dot_stuff, body_of, stored_form

ALICE = 'alice@example.test'
BOB = 'bob@example.test'
SENDER = 'sender@client.example.org'

# Fake end-of-data sequences that some servers accept (SMTP smuggling,
# CVE-2023-51764/51765/51766). Only CRLF.CRLF ends the data.
FAKE_ENDS = [b'\n.\n', b'\r.\r', b'\n.\r\n', b'\r\n.\n', b'\r\n.\r', b'\r.\r\n', b'\n.\r']

SMUGGLED = (b'MAIL FROM:<evil@attacker.example>\r\n'
            b'RCPT TO:<bob@example.test>\r\n'
            b'DATA\r\n'
            b'From: ceo@example.test\r\n'
            b'Subject: smuggled\r\n'
            b'\r\n'
            b'SMUGGLED-BODY\r\n')


class Smuggling(BuzonTestCase):

    def smuggle(self, s, fake_end):
        """Sends one message carrying a smuggled transaction; returns the replies after 354."""
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
            self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 250)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(b'From: sender@client.example.org\r\nSubject: carrier\r\n\r\nCARRIER-BODY'
                   + fake_end + SMUGGLED + b'\r\n.\r\nQUIT\r\n')
            return c.replies_until_close()

    def check(self, s, fake_end):
        replies = self.smuggle(s, fake_end)
        codes = [r.code for r in replies]
        # One reply for the end of the data, then 221 for QUIT.
        self.assertEqual(len(codes), 2, 'fake end %r: replies %r' % (fake_end, replies))
        self.assertEqual(codes[1], 221, replies)
        self.assertTrue(codes[0] == 250 or codes[0] >= 500, replies)
        self.assertEqual(s.messages(BOB), [], 'fake end %r: smuggled message delivered' % fake_end)
        alice = s.messages(ALICE)
        if codes[0] == 250:
            self.assertEqual(len(alice), 1)
            self.assertIn(b'MAIL FROM:<evil@attacker.example>', alice[0],
                          'the smuggled text must stay inside the first message')
            self.assertIn(b'SMUGGLED-BODY', alice[0])
        else:
            self.assertEqual(alice, [])
        self.assertEqual([f for f in s.all_mail_files() if '/bob/' in f], [])
        # Clean up for the next variant.
        for f in s.all_mail_files():
            os.unlink(f)

    def test_fake_ends_normalize(self):
        s = self.new_server(smtp={'bare_newline': 'normalize'})
        for fe in FAKE_ENDS:
            with self.subTest(fake_end=fe):
                self.check(s, fe)

    def test_fake_ends_reject(self):
        s = self.new_server(smtp={'bare_newline': 'reject'})
        for fe in FAKE_ENDS:
            with self.subTest(fake_end=fe):
                self.check(s, fe)

    def test_smuggling_with_bdat_announced(self):
        """CRLF.CRLF inside BDAT data is data: nothing after it runs as a command."""
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
            self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 250)
            payload = b'Subject: x\r\n\r\nhi\r\n.\r\n' + SMUGGLED + b'.\r\n'
            c.send(b'BDAT %d LAST\r\n' % len(payload) + payload)
            self.assertEqual(c.reply().code, 250)
            self.assertEqual(c.cmd('QUIT').code, 221)
        self.assertEqual(s.messages(BOB), [])
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertEqual(body_of(got[0]), payload.replace(b'\r\n', b'\n'),
                         'BDAT data is stored as is: no dot-unstuffing, no end marker')


class BareNewlines(BuzonTestCase):

    def test_normalize_bare_lf_in_body(self):
        s = self.new_server(smtp={'bare_newline': 'normalize'})
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(b'Subject: lf\r\n\r\none\ntwo\r\nthree\n\r\n.\r\n')
            self.assertEqual(c.reply().code, 250)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertEqual(body_of(got[0]), b'Subject: lf\n\none\ntwo\nthree\n\n')

    def test_reject_bare_lf_in_body(self):
        s = self.new_server(smtp={'bare_newline': 'reject'})
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(b'Subject: lf\r\n\r\none\ntwo\r\n.\r\n')
            self.assertReply(c.reply(), 550, '5.5.2')
            # The session goes on; a clean message is accepted.
            self.assertEqual(c.cmd('RSET').code, 250)
            r = c.send_message(SENDER, [ALICE], dot_stuff(make_message('clean')), ehlo=False)
            self.assertEqual(r.code, 250, r)
        self.assertEqual(len(s.messages(ALICE)), 1)
        self.assertNotIn(b'one\ntwo', s.messages(ALICE)[0])

    def test_reject_bare_lf_in_header(self):
        s = self.new_server(smtp={'bare_newline': 'reject'})
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(b'Subject: lf\nX-Other: y\r\n\r\nbody\r\n.\r\n')
            self.assertReply(c.reply(), 550, '5.5.2')
        self.assertNoMail(s)

    def test_reject_command_with_bare_lf(self):
        s = self.new_server(smtp={'bare_newline': 'reject'})
        with s.connect() as c:
            c.ehlo()
            c.send(b'MAIL FROM:<%s>\n' % SENDER.encode())
            r = c.reply()
            self.assertGreaterEqual(r.code, 500, 'a command ended by bare LF must be refused: %r' % r)
            c.send(b'RCPT TO:<alice@example.test>\r\n')
            r = c.reply()
            self.assertNotEqual(r.code, 250, 'MAIL ended by bare LF must not have started a transaction')
        self.assertNoMail(s)


class LineLimits(BuzonTestCase):

    def test_command_line_too_long(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            r = c.cmd('NOOP ' + 'x' * 600)
            self.assertReply(r, 500, '5.5.2')
            r = c.cmd('MAIL FROM:<' + 'a' * 600 + '@client.example.org>')
            self.assertReply(r, 500, '5.5.2')
            # Exactly one reply per long line, and the session still works.
            self.assertEqual(c.cmd('NOOP').code, 250)
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)

    def test_very_long_command_line(self):
        """A 100 kB line is discarded as it arrives (never buffered) and answered once."""
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            c.send(b'NOOP ' + b'y' * 100000 + b'\r\nNOOP\r\n')
            self.assertReply(c.reply(), 500, '5.5.2')
            self.assertEqual(c.reply().code, 250)

    def test_command_line_at_limit(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            line = 'NOOP ' + 'x' * (512 - 2 - 5)   # 512 octets with CRLF (RFC 5321 4.5.3.1.4)
            self.assertEqual(len(line) + 2, 512)
            self.assertEqual(c.cmd(line).code, 250)

    def test_text_line_too_long(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(b'Subject: long\r\n\r\n' + b'L' * 1500 + b'\r\nshort\r\n.\r\n')
            r = c.reply()
            self.assertGreaterEqual(r.code, 500, r)
            self.assertLess(r.code, 600, r)
            self.assertIsNotNone(r.enhanced, r)
        self.assertNoMail(s)

    def test_text_line_at_limit(self):
        s = self.new_server()
        line = b'M' * 998   # 1000 octets with CRLF (RFC 5321 4.5.3.1.6)
        msg = make_message('limit', line + b'\r\n')
        with s.connect() as c:
            r = c.send_message(SENDER, [ALICE], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertEqual(body_of(got[0]), stored_form(msg))


class SizeLimits(BuzonTestCase):

    def test_size_parameter_over_limit(self):
        s = self.new_server(smtp={'max_message_size': '10k'})
        with s.connect() as c:
            r = c.ehlo()
            self.assertIn('SIZE 10240', r.lines)
            self.assertReply(c.cmd('MAIL FROM:<%s> SIZE=10241' % SENDER), 552, '5.3.4')
            self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 503, 'no transaction after 552')
            self.assertEqual(c.cmd('MAIL FROM:<%s> SIZE=10000' % SENDER).code, 250)
        self.assertNoMail(s)

    def test_oversize_data_without_size(self):
        s = self.new_server(smtp={'max_message_size': '10k'})
        body = (b'o' * 98 + b'\r\n') * 300   # 30000 octets
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(dot_stuff(make_message('huge', body)) + b'.\r\n')
            self.assertReply(c.reply(), 552, '5.3.4')
            # The server read the data to its end: the next reply answers NOOP.
            r = c.cmd('NOOP')
            self.assertEqual(r.code, 250, 'data lines were read as commands? %r' % r)
            self.assertNoMail(s)
            small = make_message('small')
            r = c.send_message(SENDER, [ALICE], dot_stuff(small), ehlo=False)
            self.assertEqual(r.code, 250, r)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertEqual(body_of(got[0]), stored_form(small))

    def test_oversize_bdat(self):
        s = self.new_server(smtp={'max_message_size': '10k'})
        chunk = b'b' * 8000
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            c.send(b'BDAT 8000\r\n' + chunk)
            r1 = c.reply()
            c.send(b'BDAT 8000 LAST\r\n' + chunk)
            r2 = c.reply()
            self.assertEqual(r1.code, 250, r1)
            self.assertReply(r2, 552, '5.3.4')
            self.assertEqual(c.cmd('NOOP').code, 250)
        self.assertNoMail(s)

    def test_message_under_limit(self):
        s = self.new_server(smtp={'max_message_size': '10k'})
        msg = make_message('fits', (b'f' * 78 + b'\r\n') * 100)  # ~8.2k
        with s.connect() as c:
            r = c.send_message(SENDER, [ALICE], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        self.assertEqual(body_of(s.messages(ALICE)[0]), stored_form(msg))


if __name__ == '__main__':
    unittest.main(verbosity=2)
