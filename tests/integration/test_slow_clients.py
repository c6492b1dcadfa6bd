"""Slow and hostile clients (slowloris): a timeout bounds the time to a whole
command, and a minimum data rate bounds DATA and BDAT, so a client that
trickles one octet now and then is cut like a silent one, on SMTP, POP3 and
IMAP. A client that sends its message steadily above [smtp] min_data_rate
is never cut."""

import select
import socket
import time
import unittest

from buzon_test import (ALICE, IMAP_LISTENERS, POP3_LISTENERS, BuzonTestCase, make_message, scaled,
                        dot_stuff)

SENDER = 'sender@client.example.org'
# The configured timeouts (seconds); ASan slows the server, so they grow there.
T = max(2, int(round(scaled(2))))
# The attacker sends one octet this often (seconds): far below any rate.
TRICKLE = 0.5
# The session must be cut within this (seconds from the start of the trickle).
BOUND = 3 * T


def trickle(sock, payload, budget, step=1):
    """Sends payload (cycled), step octets every TRICKLE seconds, until the
    server closes the connection or budget seconds pass. Returns (seconds
    until the close or None, everything received meanwhile)."""
    t0 = time.monotonic()
    got = b''
    i = 0
    next_send = t0
    while time.monotonic() - t0 < budget:
        if time.monotonic() >= next_send:
            piece = bytes(payload[(i + k) % len(payload)] for k in range(step))
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0, got
            i += step
            next_send += TRICKLE
        ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
        if ready:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                return time.monotonic() - t0, got
            got += chunk
    return None, got


class SlowClients(BuzonTestCase):

    def assertCut(self, sock, payload, want_reply, step=1):
        """Trickles payload; the server must answer want_reply and close
        within BOUND seconds (and not long before the timeout)."""
        took, got = trickle(sock, payload, BOUND + 5, step)
        self.assertIsNotNone(took, 'a client sending %d octet(s) every %.1fs still connected after %ds '
                             '(timeout %ds); received %r' % (step, TRICKLE, BOUND + 5, T, got))
        self.assertLess(took, BOUND, 'cut only after %.1fs (timeout %ds)' % (took, T))
        self.assertGreaterEqual(took, T * 0.75, 'cut after %.1fs, before the timeout of %ds' % (took, T))
        self.assertIn(want_reply, got)
        return took

    # -- SMTP ---------------------------------------------------------------

    def smtp_txn(self, s):
        c = s.connect()
        self.addCleanup(c.close)
        c.ehlo()
        self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
        self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 250)
        return c

    def test_smtp_command_trickled(self):
        s = self.new_server(smtp={'command_timeout': T, 'data_timeout': 30 * T})
        with s.connect() as c:
            c.ehlo()
            c.send(b'MAIL FROM:<')
            self.assertCut(c.sock, b'abcdefghijklmnopqrstuvwxyz', b'421 4.4.2')
        self.assertNoMail(s)

    def test_smtp_data_trickled(self):
        s = self.new_server(smtp={'command_timeout': 30 * T, 'data_timeout': T})
        c = self.smtp_txn(s)
        self.assertEqual(c.cmd('DATA').code, 354)
        c.send(b'Subject: slow\r\n\r\n')
        self.assertCut(c.sock, b'xyz', b'421 4.4.2')
        self.assertNoMail(s)

    def test_smtp_data_whole_lines_below_rate(self):
        """Whole lines, 200 octets/s against a minimum of 500: each line buys
        0.2s of the 0.5s it takes, so the time runs out after about T/0.6
        seconds (an idle timer, re-armed by every line, never would)."""
        s = self.new_server(smtp={'command_timeout': 30 * T, 'data_timeout': T, 'min_data_rate': 500})
        c = self.smtp_txn(s)
        self.assertEqual(c.cmd('DATA').code, 354)
        line = b'y' * 98 + b'\r\n'
        self.assertCut(c.sock, line, b'421 4.4.2', step=len(line))
        self.assertNoMail(s)

    def test_smtp_bdat_trickled(self):
        s = self.new_server(smtp={'command_timeout': 30 * T, 'data_timeout': T})
        c = self.smtp_txn(s)
        c.send(b'BDAT 1000 LAST\r\n')
        self.assertCut(c.sock, b'bdat', b'421 4.4.2')
        self.assertNoMail(s)

    def test_smtp_steady_data_above_rate_is_not_cut(self):
        """About 2,000 octets/s against a minimum of 500, for more than three
        data timeouts: the message is taken."""
        s = self.new_server(smtp={'data_timeout': T, 'min_data_rate': 500})
        # (3T + 2) seconds of 1,000 octets every 0.5s, in 100-octet lines
        body = b''.join(b'line %05d ' % i + b'z' * 88 + b'\r\n' for i in range((3 * T + 2) * 20))
        msg = make_message('steady', body)
        data = dot_stuff(msg) + b'.\r\n'
        c = self.smtp_txn(s)
        self.assertEqual(c.cmd('DATA').code, 354)
        t0 = time.monotonic()
        for i in range(0, len(data), 1000):
            c.send(data[i:i + 1000])
            time.sleep(0.5)
        self.assertGreater(time.monotonic() - t0, 3 * T, 'the test must outlast the data timeout')
        c.settimeout(30)
        self.assertEqual(c.reply().code, 250)
        self.assertEqual(len(s.messages(ALICE)), 1)

    # -- POP3 ---------------------------------------------------------------

    def test_pop3_command_trickled(self):
        s = self.new_server(listeners=POP3_LISTENERS, pop3={'idle_timeout': T})
        sock = socket.create_connection(s.addr('pop'), timeout=scaled(10))
        self.addCleanup(sock.close)
        self.assertTrue(sock.recv(4096).startswith(b'+OK'))
        self.assertCut(sock, b'USER alice@example.test', b'-ERR')

    # -- IMAP (another engineer owns it; this pins what it does today) --------

    def test_imap_command_trickled(self):
        s = self.new_server(listeners=IMAP_LISTENERS, imap={'idle_timeout': T})
        c = s.connect_imap()
        self.addCleanup(c.close)
        c.login()
        self.assertCut(c.sock, b'a002 CAPABILIT', b'* BYE')


if __name__ == '__main__':
    unittest.main(verbosity=2)
