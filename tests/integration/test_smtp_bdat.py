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
        """A BDAT without a usable size gets 501 and the session ends:
        nobody can tell where its chunk ends, and the chunk's octets must
        never be read as commands (a smuggled RCPT inside it)."""
        s = self.new_server()
        for bad in ('BDAT', 'BDAT x', 'BDAT -1', 'BDAT 5 LAST LAST'):
            with self.subTest(bad=bad), s.connect() as c:
                self.start_txn(c)
                c.send(bad.encode() + b'\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n')
                replies = c.replies_until_close()
                self.assertEqual([x.code for x in replies], [501], '%s: %r' % (bad, replies))
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



class ChunkSizes(BuzonTestCase):
    """A chunk that does not fit is refused before any of its octets is read
    (552 5.3.4); one that no message could fit closes the connection."""

    def start_txn(self, c):
        c.ehlo()
        self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
        self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 250)

    def test_bdat_2_pow_64_minus_1(self):
        s = self.new_server()
        with s.connect(timeout=5) as c:
            self.start_txn(c)
            # the reply comes without a single octet of the chunk
            r = c.cmd('BDAT 18446744073709551615 LAST')
            self.assertReply(r, 552, '5.3.4')
            self.assertTrue(c.closed_within(5), 'the connection must close after the 552')
        self.assertNoMail(s)
        self.assertIn('bdat chunk over max_message_size', s.log())

    def test_bdat_over_max_message_size_pipelined(self):
        """The chunk's octets already sent do not matter: 552, then close."""
        s = self.new_server(smtp={'max_message_size': '2k'})
        with s.connect(timeout=5) as c:
            self.start_txn(c)
            c.send(b'BDAT 2049 LAST\r\n' + b'x' * 1000)
            self.assertReply(c.reply(), 552, '5.3.4')
            self.assertTrue(c.closed_within(5))
        self.assertNoMail(s)

    def test_bdat_past_what_is_left(self):
        s = self.new_server(smtp={'max_message_size': '2k'})
        with s.connect(timeout=5) as c:
            self.start_txn(c)
            c.send(b'BDAT 1500\r\n' + b'a' * 1498 + b'\r\n')
            self.assertEqual(c.reply().code, 250)
            r = c.cmd('BDAT 1000')
            self.assertReply(r, 552, '5.3.4')
            # The chunk is still read and dropped (RFC 3030): these octets
            # are not commands.
            c.send(b'QUIT\r\n' * 166 + b'QUIT')
            r = c.cmd('BDAT 0 LAST')
            self.assertEqual(r.code, 503, r)
            self.assertEqual(c.cmd('RSET').code, 250)
            # the connection goes on: a message that fits is taken
            msg = make_message('fits')
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
            self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 250)
            c.send(b'BDAT %d LAST\r\n' % len(msg) + msg)
            self.assertEqual(c.reply().code, 250)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertEqual(body_of(got[0]), msg.replace(b'\r\n', b'\n'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
