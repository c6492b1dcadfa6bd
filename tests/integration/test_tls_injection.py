"""Command injection around STARTTLS (issue 9; CVE-2011-0411 and the 2021
"NO STARTTLS" family): what a client (or a man in the middle) pipelines
after STARTTLS/STLS in the same TCP segment, before the handshake, must be
thrown away, never executed once TLS is up; and nothing the server would
have answered to it may appear after the handshake. A partial line before
the handshake is dropped too.

Each test writes "STARTTLS\\r\\n<command>\\r\\n" in one send() on a raw
socket, reads the STARTTLS reply, does the TLS handshake over the same
socket, and then checks the session state.
"""

import unittest

from buzon_test import (ALICE, PASSWORD, RawIMAP, RawPOP3, RawSMTP, TLSTestCase, after_tag, make_message)


class Injection(TLSTestCase):

    def assertQuiet(self, c, what):
        self.assertTrue(c.nothing_pending(0.7), '%s: the server sent %r after the handshake, unasked'
                        % (what, c.buf[:300]))

    # -- SMTP ----------------------------------------------------------------------

    def smtp_inject(self, s, injected, listener='mx'):
        c = RawSMTP(s.addr(listener))
        self.addCleanup(c.close)
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertIn('STARTTLS', r.lines)
        c.send(b'STARTTLS\r\n' + injected)
        r = c.reply()
        self.assertReply(r, 220, '2.0.0')
        c.start_tls(self.ctx)
        self.assertQuiet(c, 'SMTP')
        return c

    def test_smtp_mail_after_starttls_not_executed(self):
        s = self.tls_server()
        c = self.smtp_inject(s, b'MAIL FROM:<x@y.example>\r\n')
        # the EHLO before TLS is forgotten too (RFC 3207 4.2)
        self.assertReply(c.cmd('MAIL FROM:<a@b.example>'), 503)
        self.assertReply(c.ehlo(), 250)
        # no transaction was open: RCPT needs a MAIL first
        self.assertReply(c.cmd('RCPT TO:<%s>' % ALICE), 503)
        self.assertTrue(c.nothing_pending(0.3), c.buf)
        # and the session works from here
        self.assertReply(c.send_message('a@b.example', [ALICE], make_message('after injection'), ehlo=False),
                         250)
        self.assertEqual(len(s.messages(ALICE)), 1)

    def test_smtp_whole_transaction_after_starttls_not_executed(self):
        s = self.tls_server()
        msg = make_message('injected')
        c = self.smtp_inject(s, b'EHLO evil.example\r\nMAIL FROM:<x@y.example>\r\nRCPT TO:<%s>\r\nDATA\r\n%s.\r\n'
                             % (ALICE.encode(), msg))
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd('DATA'), 503)
        self.assertReply(c.cmd('QUIT'), 221)
        self.assertNoMail(s, 'the injected transaction must not deliver')

    def test_smtp_partial_line_dropped(self):
        s = self.tls_server()
        c = self.smtp_inject(s, b'MAIL FR')
        self.assertReply(c.ehlo(), 250)
        # "OM:<x@y>" alone is no MAIL command: the half line was dropped
        r = c.cmd('OM:<x@y.example>')
        self.assertIn(r.code, (500, 502), r)
        self.assertReply(c.cmd('RCPT TO:<%s>' % ALICE), 503)

    # -- POP3 ----------------------------------------------------------------------

    def test_pop3_user_after_stls_not_executed(self):
        s = self.tls_server()
        c = RawPOP3(s.addr('pop'))
        self.addCleanup(c.close)
        self.assertIn('STLS', c.capa())
        c.send(b'STLS\r\nUSER ' + ALICE.encode() + b'\r\n')
        r = c.line()
        self.assertTrue(r.startswith(b'+OK'), r)
        c.start_tls(self.ctx)
        self.assertQuiet(c, 'POP3')
        # PASS without a USER before it (in this TLS session) fails
        r = c.cmd('PASS ' + PASSWORD)
        self.assertTrue(r.startswith(b'-ERR'), 'the injected USER was executed: PASS -> %r' % r)
        caps = c.capa()
        self.assertNotIn('STLS', caps)
        r = c.login()
        self.assertTrue(r.startswith(b'+OK'), r)
        self.assertTrue(c.cmd('STAT').startswith(b'+OK'))

    def test_pop3_login_after_stls_not_executed(self):
        s = self.tls_server()
        c = RawPOP3(s.addr('pop'))
        self.addCleanup(c.close)
        c.send(b'STLS\r\nUSER %s\r\nPASS %s\r\nSTAT\r\n' % (ALICE.encode(), PASSWORD.encode()))
        self.assertTrue(c.line().startswith(b'+OK'))
        c.start_tls(self.ctx)
        self.assertQuiet(c, 'POP3')
        r = c.cmd('STAT')
        self.assertTrue(r.startswith(b'-ERR'), 'STAT must fail: not logged in (%r)' % r)

    # -- IMAP ----------------------------------------------------------------------

    def test_imap_login_after_starttls_not_executed(self):
        s = self.tls_server()
        c = RawIMAP(s.addr('imap'))
        self.addCleanup(c.close)
        self.assertIn('STARTTLS', c.greeting.decode())
        c.send(b'a STARTTLS\r\nb LOGIN "%s" "%s"\r\n' % (ALICE.encode(), PASSWORD.encode()))
        untagged, tagged = c.until_tagged('a')
        self.assertEqual(untagged, [])
        self.assertRegex(after_tag(tagged), r'^OK\b')
        c.start_tls(self.ctx)
        self.assertQuiet(c, 'IMAP')
        # not authenticated: SELECT is refused (BAD or NO), and never a "b" reply
        untagged, tagged = c.command('SELECT INBOX', tag='c')
        self.assertFalse(any(l.startswith('b ') for l in untagged), untagged)
        self.assertRegex(after_tag(tagged), r'^(BAD|NO)\b', 'SELECT must fail before LOGIN')
        untagged, tagged = c.cmd('CAPABILITY', tag='d')
        caps = ' '.join(untagged)
        self.assertNotIn('STARTTLS', caps)
        self.assertIn('IMAP4rev1', caps)
        c.login()
        c.ok('SELECT INBOX')

    def test_imap_partial_line_dropped(self):
        s = self.tls_server()
        c = RawIMAP(s.addr('imap'))
        self.addCleanup(c.close)
        c.send(b'a STARTTLS\r\nb LOGIN "%s" "%s' % (ALICE.encode(), PASSWORD.encode()))
        _, tagged = c.until_tagged('a')
        self.assertRegex(after_tag(tagged), r'^OK\b')
        c.start_tls(self.ctx)
        self.assertQuiet(c, 'IMAP')
        # the rest of the half line alone is no command
        c.send(b'"\r\n')
        untagged, tagged = c.command('SELECT INBOX', tag='c')
        self.assertFalse(any(l.startswith('b OK') for l in untagged), untagged)
        self.assertRegex(after_tag(tagged), r'^(BAD|NO)\b', untagged)


if __name__ == '__main__':
    unittest.main(verbosity=2)
