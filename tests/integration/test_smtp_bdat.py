"""CHUNKING (RFC 3030): BDAT chunks, BDAT LAST, BDAT 0 LAST, pipelined BDAT."""

import time
import unittest

from buzon_test import BuzonTestCase, make_message, body_of, scaled

ALICE = 'alice@example.test'
BOB = 'bob@example.test'
SENDER = 'sender@client.example.org'


class Chunking(BuzonTestCase):

    def start_txn(self, c, rcpts=(ALICE,)):
        c.ehlo()
        self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
        for r in rcpts:
            self.assertEqual(c.cmd('RCPT TO:<%s>' % r).code, 250)

    def test_chunks_then_bdat_0_last(self):
        s = self.new_server()
        msg = make_message('chunks', b'.not stuffed\r\nline two\r\n.\r\nend\r\n')
        # Split inside a CRLF pair and inside a line.
        cut1 = msg.index(b'\r\n', 40) + 1
        cut2 = len(msg) - 7
        parts = [msg[:cut1], msg[cut1:cut2], msg[cut2:]]
        with s.connect() as c:
            self.start_txn(c)
            for p in parts:
                c.send(b'BDAT %d\r\n' % len(p) + p)
                r = c.reply()
                self.assertEqual(r.code, 250, r)
                self.assertIsNotNone(r.enhanced, r)
            r = c.cmd('BDAT 0 LAST')
            self.assertEqual(r.code, 250, r)
            self.assertEqual(c.cmd('QUIT').code, 221)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertDelivered(s, got[0], msg, SENDER, ALICE)

    def test_single_bdat_last(self):
        s = self.new_server()
        msg = make_message('one chunk', b'..two dots stay two\r\n')
        with s.connect() as c:
            self.start_txn(c, (ALICE, BOB))
            c.send(b'BDAT %d LAST\r\n' % len(msg) + msg)
            self.assertEqual(c.reply().code, 250)
        for u in (ALICE, BOB):
            got = s.messages(u)
            self.assertEqual(len(got), 1)
            self.assertDelivered(s, got[0], msg, SENDER, u)

    def test_pipelined_bdat(self):
        s = self.new_server()
        m1 = make_message('p1', b'first\r\n')
        m2 = make_message('p2', b'second\r\n')
        with s.connect() as c:
            c.ehlo()
            c.send(b'MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT %d\r\n%sBDAT %d LAST\r\n%s'
                   b'MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n%sQUIT\r\n' % (
                       SENDER.encode(), ALICE.encode(), 10, m1[:10], len(m1) - 10, m1[10:],
                       SENDER.encode(), BOB.encode(), len(m2), m2))
            replies = c.replies_until_close()
            self.assertEqual([r.code for r in replies], [250, 250, 250, 250, 250, 250, 250, 221], replies)
        self.assertEqual([body_of(d) for d in s.messages(ALICE)], [m1.replace(b'\r\n', b'\n')])
        self.assertEqual([body_of(d) for d in s.messages(BOB)], [m2.replace(b'\r\n', b'\n')])

    def test_bdat_then_data_refused(self):
        s = self.new_server()
        with s.connect() as c:
            self.start_txn(c)
            c.send(b'BDAT 5\r\nabcde')
            self.assertEqual(c.reply().code, 250)
            r = c.cmd('DATA')
            self.assertEqual(r.code, 503, 'DATA after BDAT: %r' % r)
            # RSET drops the half message.
            self.assertEqual(c.cmd('RSET').code, 250)
            self.assertEqual(c.cmd('QUIT').code, 221)
        self.assertNoMail(s)

    def test_bdat_without_transaction(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            c.send(b'BDAT 12\r\nNOOP\r\nNOOP\r\n')
            r = c.reply()
            self.assertEqual(r.code, 503, r)
            # The 12 octets were read as the chunk, not as commands.
            self.assertEqual(c.cmd('NOOP').code, 250)
            c.send(b'QUIT\r\n')
            replies = c.replies_until_close()
            self.assertEqual([x.code for x in replies], [221], replies)
        self.assertNoMail(s)

    def test_bdat_bad_syntax(self):
        s = self.new_server()
        with s.connect() as c:
            self.start_txn(c)
            for bad in ('BDAT', 'BDAT x', 'BDAT -1'):
                r = c.cmd(bad)
                self.assertEqual(r.code // 100, 5, '%s: %r' % (bad, r))
            self.assertEqual(c.cmd('NOOP').code, 250)
        self.assertNoMail(s)

    def test_connection_lost_mid_chunk(self):
        s = self.new_server()
        with s.connect() as c:
            self.start_txn(c)
            c.send(b'BDAT 1000 LAST\r\n' + b'x' * 500)
        # The server notices the close; nothing may be delivered.
        time.sleep(scaled(1))
        with s.connect() as c:
            self.assertEqual(c.cmd('NOOP').code, 250)
        self.assertNoMail(s)


if __name__ == '__main__':
    unittest.main(verbosity=2)
