"""SMTP basics against the real server: greeting, EHLO, simple commands,
enhanced status codes, delivery with its trace headers, pipelining."""

import smtplib
import socket
import time
import unittest

from buzon_test import BuzonTestCase, make_message, dot_stuff, body_of, stored_form, HOSTNAME, scaled

ALICE = 'alice@example.test'
BOB = 'bob@example.test'


class SMTPBasics(BuzonTestCase):

    def test_greeting_and_ehlo_extensions(self):
        s = self.new_server(smtp={'max_message_size': '10M'})
        with s.connect() as c:
            self.assertEqual(c.greeting.code, 220)
            self.assertIn(HOSTNAME, c.greeting.lines[0])
            r = c.ehlo()
            self.assertEqual(r.code, 250)
            self.assertTrue(r.lines[0].startswith(HOSTNAME), r)
            ext = {l.split(' ')[0].upper(): l for l in r.lines[1:]}
            for name in ('PIPELINING', 'SIZE', '8BITMIME', 'ENHANCEDSTATUSCODES', 'SMTPUTF8', 'CHUNKING'):
                self.assertIn(name, ext, 'EHLO must advertise %s: %r' % (name, r))
            self.assertEqual(ext['SIZE'], 'SIZE %d' % (10 * 1024 * 1024))
            self.assertReply(c.cmd('QUIT'), 221, '2.0.0')
            self.assertTrue(c.closed_within(5), 'connection must close after QUIT')

    def test_simple_commands(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            r = c.cmd('VRFY alice@example.test')
            self.assertEqual(r.code, 252, r)
            self.assertIsNotNone(r.enhanced, r)
            r = c.cmd('HELP')
            self.assertEqual(r.code, 214, r)
            self.assertIsNotNone(r.enhanced, r)
            r = c.cmd('NOOP')
            self.assertEqual(r.code, 250, r)
            self.assertIsNotNone(r.enhanced, r)
            self.assertReply(c.cmd('MAIL FROM:<a@client.example.org>'), 250)
            r = c.cmd('RSET')
            self.assertEqual(r.code, 250, r)
            self.assertIsNotNone(r.enhanced, r)
            # RSET ended the transaction: RCPT now is out of sequence.
            r = c.cmd('RCPT TO:<alice@example.test>')
            self.assertEqual(r.code, 503, r)
            self.assertEqual(c.cmd('QUIT').code, 221)
        self.assertNoMail(s)

    def test_every_reply_has_enhanced_code(self):
        """Every reply except the greeting and EHLO/HELO carries an enhanced code (RFC 2034)."""
        s = self.new_server()
        bad = []
        with s.connect() as c:
            c.ehlo()
            for cmd in ['NOOP', 'HELP', 'VRFY bob', 'EXPN staff', 'FROB', 'RCPT TO:<alice@example.test>',
                        'DATA', 'MAIL FROM:<bad', 'MAIL FROM:<a@client.example.org>',
                        'MAIL FROM:<b@client.example.org>', 'RCPT TO:<nobody@example.test>',
                        'RCPT TO:<x@elsewhere.example>', 'RCPT TO:<alice@example.test>', 'DATA']:
                r = c.cmd(cmd)
                if not r.all_lines_enhanced():
                    bad.append((cmd, r))
            r = c.cmd(b'Subject: x\r\n\r\nhi\r\n.')
            if not r.all_lines_enhanced():
                bad.append(('end of data', r))
            for cmd in ['RSET', 'HELO client.example.org', 'QUIT']:
                r = c.cmd(cmd)
                if cmd.startswith('HELO'):
                    continue
                if not r.all_lines_enhanced():
                    bad.append((cmd, r))
        self.assertEqual(bad, [], 'replies without an enhanced status code')

    def test_out_of_sequence_and_syntax(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            r = c.cmd('RCPT TO:<alice@example.test>')
            self.assertEqual(r.code, 503, r)
            r = c.cmd('DATA')
            self.assertEqual(r.code, 503, r)
            r = c.cmd('MAIL FROM:alice')
            self.assertIn(r.code, (501, 553), r)
            r = c.cmd('FROBNICATE')
            self.assertEqual(r.code, 500, r)
            self.assertReply(c.cmd('MAIL FROM:<a@client.example.org>'), 250)
            r = c.cmd('MAIL FROM:<a@client.example.org>')
            self.assertEqual(r.code, 503, 'nested MAIL: %r' % r)
            r = c.cmd('DATA')
            self.assertIn(r.code, (503, 554), 'DATA without recipients: %r' % r)
            self.assertEqual(c.cmd('QUIT').code, 221)
        self.assertNoMail(s)

    def test_delivery_smtplib_headers_and_exact_body(self):
        s = self.new_server()
        body = (b'first line\r\n'
                b'.leading dot\r\n'
                b'..two dots\r\n'
                b'.\r\n'
                b'trailing spaces   \r\n'
                b'\ttab line\r\n'
                b'\r\n'
                b'last line without special\r\n')
        msg = make_message('smtplib', body)
        with smtplib.SMTP(*s.addr(), local_hostname='client.example.org', timeout=scaled(10)) as cl:
            refused = cl.sendmail('sender@client.example.org', [ALICE], msg)
            self.assertEqual(refused, {})
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertDelivered(s, got[0], msg, 'sender@client.example.org', ALICE, proto='ESMTP')
        self.assertEqual(s.messages(BOB), [])

    def test_helo_received_with_smtp(self):
        s = self.new_server()
        msg = make_message('helo')
        with s.connect() as c:
            r = c.cmd('HELO client.example.org')
            self.assertEqual(r.code, 250, r)
            r = c.send_message('sender@client.example.org', [ALICE], dot_stuff(msg), ehlo=False)
            self.assertEqual(r.code, 250, r)
            self.assertIsNotNone(r.enhanced)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertDelivered(s, got[0], msg, 'sender@client.example.org', ALICE, proto='SMTP')

    def test_null_sender(self):
        s = self.new_server()
        msg = make_message('bounce')
        with s.connect() as c:
            r = c.send_message('', [ALICE], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertDelivered(s, got[0], msg, '', ALICE)

    def test_8bitmime_and_smtputf8(self):
        s = self.new_server()
        body = 'Grüße aus Köln — ünïcödé\r\n'.encode('utf-8') + bytes(range(0x80, 0x100)).replace(b'\r', b'') + b'\r\n'
        msg = make_message('8bit', body, extra='X-Name: Jürgen\r\n'.encode('utf-8'))
        with s.connect() as c:
            c.ehlo()
            self.assertReply(c.cmd('MAIL FROM:<sender@client.example.org> BODY=8BITMIME'), 250)
            self.assertReply(c.cmd('RCPT TO:<alice@example.test>'), 250)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(dot_stuff(msg) + b'.\r\n')
            self.assertEqual(c.reply().code, 250)
            sender = 'jürgen@client.example.org'
            self.assertReply(c.cmd('MAIL FROM:<%s> SMTPUTF8' % sender), 250)
            self.assertReply(c.cmd('RCPT TO:<alice@example.test>'), 250)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(dot_stuff(msg) + b'.\r\n')
            self.assertEqual(c.reply().code, 250)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 2)
        for data in got:
            self.assertEqual(body_of(data), stored_form(msg))
        self.assertTrue(any(b'Return-Path: <j\xc3\xbcrgen@client.example.org>' in d for d in got),
                        'the SMTPUTF8 sender must be in Return-Path as UTF-8')

    def test_recipient_case_insensitive(self):
        s = self.new_server()
        msg = make_message('case')
        with s.connect() as c:
            r = c.send_message('sender@client.example.org', ['ALICE@EXAMPLE.TEST'], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        self.assertEqual(len(s.messages(ALICE)), 1)

    def test_pipelining(self):
        s = self.new_server()
        msg = make_message('pipelined')
        with s.connect() as c:
            c.ehlo()
            c.send(b'MAIL FROM:<sender@client.example.org>\r\n'
                   b'RCPT TO:<alice@example.test>\r\n'
                   b'RCPT TO:<nobody@example.test>\r\n'
                   b'RCPT TO:<bob@example.test>\r\n'
                   b'DATA\r\n')
            codes = [c.reply().code for _ in range(5)]
            self.assertEqual(codes, [250, 250, 550, 250, 354])
            # The message, the next transaction and QUIT in one write.
            c.send(dot_stuff(msg) + b'.\r\n'
                   b'MAIL FROM:<other@client.example.org>\r\n'
                   b'RCPT TO:<bob@example.test>\r\n'
                   b'DATA\r\n')
            codes = [c.reply().code for _ in range(4)]
            self.assertEqual(codes, [250, 250, 250, 354])
            c.send(dot_stuff(msg) + b'.\r\nQUIT\r\n')
            self.assertEqual(c.reply().code, 250)
            self.assertEqual(c.reply().code, 221)
        self.assertEqual(len(s.messages(ALICE)), 1)
        self.assertEqual(len(s.messages(BOB)), 2)
        for d in s.messages(ALICE) + s.messages(BOB):
            self.assertEqual(body_of(d), stored_form(msg))

    def test_pipelining_burst(self):
        """300 commands in one write: every one answered, in order."""
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            c.send(b''.join(b'NOOP %d\r\n' % i for i in range(300)) + b'QUIT\r\n')
            replies = c.replies_until_close(limit=400)
            self.assertEqual([r.code for r in replies], [250] * 300 + [221])

    def test_unknown_mail_parameter(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            r = c.cmd('MAIL FROM:<%s> FROB=1' % 'sender@client.example.org')
            self.assertIn(r.code, (501, 555), r)
            self.assertEqual(c.cmd('RCPT TO:<alice@example.test>').code, 503, 'no transaction started')
        self.assertNoMail(s)

    def test_log_has_no_message_text(self):
        """Logs carry metadata only: no body, no subject."""
        s = self.new_server()
        marker = 'Zx9secretMarker'
        msg = make_message('subject ' + marker, ('body %s\r\n' % marker).encode())
        with s.connect() as c:
            r = c.send_message('sender@client.example.org', [ALICE], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        self.assertEqual(s.stop(), 0)
        self.assertIn('comp=smtp', s.log())
        self.assertNotIn(marker, s.log())

    def test_end_of_data_split_across_segments(self):
        """CRLF.CRLF arriving in two TCP segments, cut at every place, still ends the data."""
        s = self.new_server()
        end = b'\r\n.\r\n'
        sent = []
        with s.connect() as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.ehlo()
            for k in range(1, len(end)):
                # The message ends without CRLF: the CRLF of the terminator is its last line end.
                msg = make_message('split %d' % k, b'body %d' % k, msgid='<split-%d@x>' % k)
                sent.append(msg + b'\r\n')
                self.assertEqual(c.cmd('MAIL FROM:<s@client.example.org>').code, 250)
                self.assertEqual(c.cmd('RCPT TO:<alice@example.test>').code, 250)
                self.assertEqual(c.cmd('DATA').code, 354)
                c.send(dot_stuff(msg) + end[:k])
                time.sleep(0.05)
                c.send(end[k:])
                r = c.reply()
                self.assertEqual(r.code, 250, 'cut after %d octets: %r' % (k, r))
        got = sorted(body_of(d) for d in s.messages(ALICE))
        self.assertEqual(got, sorted(stored_form(m) for m in sent))

    def test_session_byte_by_byte(self):
        s = self.new_server()
        msg = make_message('bytes', b'one\r\n.two\r\n')
        script = (b'EHLO client.example.org\r\nMAIL FROM:<s@client.example.org>\r\n'
                  b'RCPT TO:<alice@example.test>\r\nDATA\r\n')
        with s.connect() as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(script)):
                c.send(script[i:i + 1])
                time.sleep(0.001)
            self.assertEqual([c.reply().code for _ in range(4)], [250, 250, 250, 354])
            payload = dot_stuff(msg) + b'.\r\n'
            for i in range(len(payload)):
                c.send(payload[i:i + 1])
                time.sleep(0.001)
            self.assertEqual(c.reply().code, 250)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertEqual(body_of(got[0]), stored_form(msg))

    def test_lowercase_commands(self):
        s = self.new_server()
        msg = make_message('lower')
        with s.connect() as c:
            self.assertEqual(c.cmd('ehlo client.example.org').code, 250)
            self.assertEqual(c.cmd('mail from:<s@client.example.org>').code, 250)
            self.assertEqual(c.cmd('rcpt to:<alice@example.test>').code, 250)
            self.assertEqual(c.cmd('data').code, 354)
            c.send(dot_stuff(msg) + b'.\r\n')
            self.assertEqual(c.reply().code, 250)
            self.assertEqual(c.cmd('quit').code, 221)
        self.assertEqual(len(s.messages(ALICE)), 1)

    def test_ehlo_resets_transaction(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<s@client.example.org>').code, 250)
            self.assertEqual(c.cmd('RCPT TO:<alice@example.test>').code, 250)
            self.assertEqual(c.ehlo().code, 250)
            self.assertEqual(c.cmd('DATA').code, 503, 'EHLO ends the transaction (RFC 5321 4.1.4)')
        self.assertNoMail(s)

    def test_helo_ehlo_need_argument(self):
        s = self.new_server()
        with s.connect() as c:
            self.assertEqual(c.cmd('EHLO').code, 501)
            self.assertEqual(c.cmd('HELO').code, 501)
            self.assertEqual(c.ehlo().code, 250)

    def test_nul_in_command(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<s@client.example.org>').code, 250)
            r = c.cmd(b'RCPT TO:<alice@example.test>\x00 trailing')
            self.assertEqual(r.code // 100, 5, 'a command with NUL must be refused: %r' % r)
            r = c.cmd('DATA')
            self.assertNotEqual(r.code, 354, r)
        self.assertNoMail(s)

    def test_many_messages_one_session(self):
        s = self.new_server()
        sent = []
        with smtplib.SMTP(*s.addr(), local_hostname='client.example.org', timeout=scaled(10)) as cl:
            for i in range(20):
                m = make_message('n%d' % i, b'message %d\r\n' % i, msgid='<%d@x>' % i)
                sent.append(m)
                cl.sendmail('s@client.example.org', [ALICE], m)
                cl.rset()
        got = sorted(body_of(d) for d in s.messages(ALICE))
        self.assertEqual(got, sorted(stored_form(m) for m in sent))


if __name__ == '__main__':
    unittest.main(verbosity=2)
