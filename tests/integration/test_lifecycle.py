"""Start and stop: graceful stop on SIGTERM/SIGINT, stop with a stalled client,
tmp/ sweep at start."""

import os
import signal
import socket
import time
import unittest

from buzon_test import BuzonTestCase, RawSMTP, SMTPClosed, make_message, dot_stuff, scaled

ALICE = 'alice@example.test'
SENDER = 'sender@client.example.org'


class GracefulStop(BuzonTestCase):

    def test_sigterm_idle_client_gets_421(self):
        s = self.new_server(server={'shutdown_timeout': '5s'})
        with s.connect() as c:
            c.ehlo()
            t0 = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            c.settimeout(10)
            r = c.reply()
            self.assertEqual(r.code, 421, r)
            self.assertIsNotNone(r.enhanced, r)
            self.assertTrue(c.closed_within(5))
            rc = s.wait_exit(scaled(5) + 2)
            self.assertIsNotNone(rc, 'server still running after shutdown_timeout')
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t0, scaled(5) + 2)

    def test_sigint(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            rc = s.stop(signal.SIGINT, timeout=10)
            self.assertEqual(rc, 0)

    def test_stop_closes_listener(self):
        s = self.new_server()
        addr = s.addr()
        self.assertEqual(s.stop(), 0)
        sock = socket.socket()
        sock.settimeout(2)
        with self.assertRaises(OSError):
            sock.connect(addr)
        sock.close()

    def test_sigterm_mid_transaction_finishes_current_message(self):
        """A client in a transaction may finish its message; then it is closed."""
        s = self.new_server(server={'shutdown_timeout': '10s'})
        msg = make_message('during shutdown')
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
            self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 250)
            self.assertEqual(c.cmd('DATA').code, 354)
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            c.send(dot_stuff(msg) + b'.\r\n')
            r = c.reply()
            self.assertEqual(r.code, 250, 'a message under way is finished on SIGTERM: %r' % r)
            rest = c.replies_until_close()
            self.assertTrue(all(x.code == 421 for x in rest), rest)
            self.assertTrue(c.eof or c.closed_within(5), 'closed after the current reply')
        rc = s.wait_exit(scaled(10))
        self.assertEqual(rc, 0)
        self.assertEqual(len(s.messages(ALICE)), 1)

    def test_sigterm_stalled_client_bounded_by_shutdown_timeout(self):
        s = self.new_server(server={'shutdown_timeout': '2s'}, smtp={'data_timeout': '5m'})
        with s.connect() as c:
            c.ehlo()
            c.cmd('MAIL FROM:<%s>' % SENDER)
            c.cmd('RCPT TO:<%s>' % ALICE)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(b'Subject: never finished\r\n\r\npartial')
            t0 = time.monotonic()
            s.proc.send_signal(signal.SIGTERM)
            rc = s.wait_exit(scaled(2) + 3)
            elapsed = time.monotonic() - t0
            self.assertIsNotNone(rc, 'server must stop within shutdown_timeout')
            self.assertEqual(rc, 0)
            self.assertLess(elapsed, scaled(2) + 3)
            try:
                rest = c.replies_until_close()
            except (SMTPClosed, OSError):
                rest = []
            self.assertTrue(all(x.code == 421 for x in rest), rest)
        self.assertNoMail(s, 'a partial message must not be delivered')


class StartUp(BuzonTestCase):

    def test_tmp_swept_at_start(self):
        s = self.new_server(start=False)
        tmp_files = [os.path.join(s.maildir(ALICE), 'tmp', '1700000000.M1P1Q1.host'),
                     os.path.join(s.maildir(ALICE, 'Sent'), 'tmp', '1700000000.M2P1Q2.host')]
        for p in tmp_files:
            with open(p, 'wb') as f:
                f.write(b'Subject: half writ')
        # A file that already reached new/ is a delivered message and stays.
        keep = os.path.join(s.maildir(ALICE), 'new', '1700000000.M3P1Q3.host,S=5')
        with open(keep, 'wb') as f:
            f.write(b'x: y\n')
        s.start()
        for p in tmp_files:
            self.assertFalse(os.path.exists(p), p + ' must be swept at start')
        self.assertTrue(os.path.exists(keep))

    def test_two_listeners_and_ipv6(self):
        listeners = {'mx': '127.0.0.1:0 [::1]:0', 'submission-like': '127.0.0.1:0'}
        s = self.new_server(listeners=listeners)
        self.assertEqual(len(s.listeners['mx']), 2, s.listeners)
        self.assertEqual(len(s.listeners['submission-like']), 1)
        addrs = s.listeners['mx'] + s.listeners['submission-like']
        self.assertEqual(len(set(addrs)), 3)
        self.assertTrue(any(h == '::1' for h, _ in addrs))
        for i, (host, port) in enumerate(addrs):
            with RawSMTP((host, port)) as c:
                r = c.send_message(SENDER, [ALICE], dot_stuff(make_message('via %s' % host, msgid='<%d@x>' % i)))
                self.assertEqual(r.code, 250, r)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 3)
        self.assertTrue(any(b'::1' in d.split(b'\n\n')[0] for d in got), 'Received names the IPv6 client')


if __name__ == '__main__':
    unittest.main(verbosity=2)
