"""Connection limits, idle timeouts and the bad-command limit."""

import socket
import struct
import time
import unittest

from buzon_test import BuzonTestCase, RawSMTP, SMTPClosed, make_message, dot_stuff, scaled

ALICE = 'alice@example.test'
SENDER = 'sender@client.example.org'


class ConnectionLimits(BuzonTestCase):

    def expect_refused(self, s, source=None):
        """The extra connection gets 421 4.7.0 and is closed."""
        c = RawSMTP(s.addr(), source=source, read_greeting=False, timeout=5)
        try:
            r = c.reply()
            self.assertReply(r, 421, '4.7.0')
            self.assertTrue(c.closed_within(5), 'the refused connection must be closed')
        finally:
            c.close()

    def test_max_connections(self):
        s = self.new_server(server={'max_connections': 2, 'max_connections_per_ip': 10})
        a = s.connect()
        b = s.connect(source='127.0.0.2')
        try:
            self.assertEqual(a.greeting.code, 220)
            self.assertEqual(b.greeting.code, 220)
            self.expect_refused(s, source='127.0.0.3')
            self.expect_refused(s)
            # The sessions in place are unaffected.
            self.assertEqual(a.cmd('NOOP').code, 250)
            self.assertEqual(b.cmd('NOOP').code, 250)
        finally:
            b.close()
        # A slot is free again once a session ends.
        self.assertEqual(self.connect_retry(s).greeting.code, 220)
        a.close()

    def test_max_connections_per_ip(self):
        s = self.new_server(server={'max_connections': 50, 'max_connections_per_ip': 2})
        a = s.connect()
        b = s.connect()
        try:
            self.expect_refused(s)
            other = s.connect(source='127.0.0.2')
            self.assertEqual(other.greeting.code, 220, 'another address is not limited')
            other.close()
            self.assertEqual(a.cmd('NOOP').code, 250)
        finally:
            a.close()
        c = self.connect_retry(s)
        self.assertEqual(c.greeting.code, 220)
        c.close()
        b.close()

    def test_connection_churn_does_not_leak_slots(self):
        """Connections dropped abruptly (RST, mid-command, mid-data) all give back their slot."""
        s = self.new_server(server={'max_connections': 4, 'max_connections_per_ip': 4})
        for i in range(60):
            # No wait for the greeting: libuv accepts in a loop, and a client
            # that waits for each greeting keeps the server in that loop, so
            # its closes pile up (and past 2 * max + 16 it closes silently).
            c = s.connect(read_greeting=False)
            if i % 3 == 1:
                c.send(b'EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nhalf')
            elif i % 3 == 2:
                c.send(b'NOOP')
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            c.close()
        held = []
        deadline = time.monotonic() + scaled(5)
        while len(held) < 4:
            c = RawSMTP(s.addr(), read_greeting=False, timeout=5)
            try:
                r = c.reply()
            except SMTPClosed as e:
                r = e   # closed without a word: still over the hard cap; try again
            if getattr(r, 'code', None) == 220:
                held.append(c)
                continue
            c.close()
            self.assertLess(time.monotonic(), deadline, 'slots not given back: %r' % r)
            time.sleep(0.1)
        for c in held:
            self.assertEqual(c.cmd('NOOP').code, 250)
            c.close()
        self.assertNoMail(s)

    def connect_retry(self, s):
        """Connects until the server has noticed a close (the slot comes back)."""
        deadline = time.monotonic() + scaled(5)
        while True:
            c = RawSMTP(s.addr(), read_greeting=False, timeout=5)
            r = c.reply()
            if r.code == 220 or time.monotonic() > deadline:
                c.greeting = r
                self.addCleanup(c.close)
                return c
            c.close()
            time.sleep(0.1)


class Timeouts(BuzonTestCase):

    def test_command_timeout(self):
        s = self.new_server(smtp={'command_timeout': '2s'})
        with s.connect() as c:
            c.ehlo()
            t0 = time.monotonic()
            c.settimeout(10)
            r = c.reply()
            elapsed = time.monotonic() - t0
            self.assertReply(r, 421, '4.4.2')
            self.assertGreaterEqual(elapsed, 1.5, 'timed out too early')
            self.assertLess(elapsed, scaled(6), 'timed out too late')
            self.assertTrue(c.closed_within(5), 'connection must close after 421')

    def test_command_timeout_before_ehlo(self):
        s = self.new_server(smtp={'command_timeout': '2'})
        with s.connect() as c:
            c.settimeout(10)
            self.assertReply(c.reply(), 421, '4.4.2')
            self.assertTrue(c.closed_within(5))

    def test_command_timeout_partial_line(self):
        s = self.new_server(smtp={'command_timeout': '2s'})
        with s.connect() as c:
            c.ehlo()
            c.send(b'MAIL FROM:<stalled@client.exa')
            c.settimeout(10)
            self.assertReply(c.reply(), 421, '4.4.2')
            self.assertTrue(c.closed_within(5))

    def test_activity_rearms_timeout(self):
        s = self.new_server(smtp={'command_timeout': '2s'})
        with s.connect() as c:
            c.ehlo()
            for _ in range(4):
                time.sleep(1)
                self.assertEqual(c.cmd('NOOP').code, 250)

    def test_data_timeout(self):
        s = self.new_server(smtp={'command_timeout': '30s', 'data_timeout': '2s'})
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(b'Subject: stalled\r\n\r\nhalf a messa')
            c.settimeout(10)
            t0 = time.monotonic()
            r = c.reply()
            self.assertReply(r, 421, '4.4.2')
            self.assertLess(time.monotonic() - t0, scaled(6))
            self.assertTrue(c.closed_within(5))
        self.assertNoMail(s)

    def test_slow_but_steady_data(self):
        """Data that keeps arriving at min_data_rate or faster is not cut off
        by the data timeout (this client sends about 100 octets a second)."""
        s = self.new_server(smtp={'data_timeout': '2s', 'min_data_rate': '10'})
        msg = make_message('slow', b'line\r\n' * 6)
        data = dot_stuff(msg) + b'.\r\n'
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            self.assertEqual(c.cmd('DATA').code, 354)
            step = len(data) // 4 + 1
            for i in range(0, len(data), step):
                c.send(data[i:i + step])
                time.sleep(1)
            self.assertEqual(c.reply().code, 250)
        self.assertEqual(len(s.messages(ALICE)), 1)


class BadCommands(BuzonTestCase):

    def test_too_many_bad_commands(self):
        s = self.new_server(smtp={'max_bad_commands': 3})
        with s.connect() as c:
            c.ehlo()
            replies = []
            try:
                for _ in range(10):
                    replies.append(c.cmd('XYZZY'))
                    if replies[-1].code == 421:
                        break
            except (SMTPClosed, socket.timeout, OSError):
                pass
            codes = [r.code for r in replies]
            self.assertIn(421, codes, replies)
            self.assertLessEqual(len(codes), 4, 'the limit is 3 bad commands: %r' % replies)
            self.assertTrue(all(code // 100 == 5 for code in codes[:-1]), replies)
            self.assertTrue(c.closed_within(5), 'connection must close after 421')

    def test_good_commands_do_not_count(self):
        s = self.new_server(smtp={'max_bad_commands': 3})
        with s.connect() as c:
            c.ehlo()
            for _ in range(2):
                self.assertEqual(c.cmd('XYZZY').code // 100, 5)
            for _ in range(10):
                self.assertEqual(c.cmd('NOOP').code, 250)


class MessageMemory(BuzonTestCase):

    def test_shared_message_budget(self):
        """[smtp] max_buffered bounds the messages held by all sessions at once:
        the one that would go past it is read to its end and gets 452 4.3.1,
        nothing is delivered for it, and it goes through once memory is free."""
        s = self.new_server(smtp={'max_message_size': '1M', 'max_buffered': '1M'})
        line = b'x' * 70 + b'\r\n'
        with s.connect() as a, s.connect() as b:
            for c in (a, b):
                c.ehlo()
                self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
                self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 250)
                self.assertEqual(c.cmd('DATA').code, 354)
            # a holds about 700 kB and has not finished its message.
            a.send(b'Subject: big\r\n\r\n' + line * 10000)
            time.sleep(scaled(0.5))
            # b needs about 400 kB more: over the shared budget.
            b.send(b'Subject: second\r\n\r\n' + line * 5600 + b'.\r\n')
            self.assertReply(b.reply(), 452, '4.3.1')
            self.assertEqual(len(s.messages(ALICE)), 0)
            a.send(b'.\r\n')
            self.assertEqual(a.reply().code, 250)
            # The memory is free again: b's retry is taken.
            self.assertEqual(b.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
            self.assertEqual(b.cmd('RCPT TO:<%s>' % ALICE).code, 250)
            self.assertEqual(b.cmd('DATA').code, 354)
            b.send(b'Subject: second\r\n\r\n' + line * 5600 + b'.\r\n')
            self.assertEqual(b.reply().code, 250)
        self.assertEqual(len(s.messages(ALICE)), 2)

    def test_budget_smaller_than_message_size_is_refused(self):
        s = self.new_server(start=False, users=False, smtp={'max_message_size': '2M', 'max_buffered': '1M'})
        p = s.cli('check')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('max_buffered', p.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
