"""IMAP before login (issue 8): what a client that has not logged in can
cost the server. Its literals are small ([imap] login_max_literal) and drawn
from their own budget ([imap] login_max_buffered), its command lines short
(8 KiB), and it has [imap] login_timeout from connect to log in, whatever it
sends meanwhile. Logged-in users are never affected: the attack of the issue
(connections announcing {52428800} literals to fill max_buffered) is
reproduced while a user APPENDs, and the server's RSS is watched.
"""

import base64
import imaplib
import os
import re
import select
import socket
import time
import unittest

from buzon_test import ALICE, IMAP_LISTENERS, PASSWORD, BuzonTestCase, make_message, scaled

ERIN = 'erin@example.test'   # not one of the users new_server() adds
APPENDUID_RE = re.compile(r'^OK \[APPENDUID \d+ \d+\]')


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise AssertionError('no VmRSS for %d' % pid)


def quoted(text):
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"') + '"'


class PreLogin(BuzonTestCase):

    def imap_server(self, imap=None, auth=None):
        return self.new_server(listeners=IMAP_LISTENERS, imap=imap, auth=auth)

    def raw(self, s, **kw):
        c = s.connect_imap(**kw)
        self.addCleanup(c.close)
        return c

    def trickle_until_closed(self, c, data, every, limit):
        """Sends data one octet per `every` seconds (again from the start
        when it runs out) until the server closes; returns (seconds since
        the call, the lines the server wrote)."""
        t0 = time.monotonic()
        got = c.buf
        i = 0
        closed = False
        while time.monotonic() - t0 < limit and not closed:
            try:
                c.sock.sendall(data[i % len(data):i % len(data) + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            i += 1
            end = time.monotonic() + every
            while not closed:
                left = end - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([c.sock], [], [], left)
                if not r:
                    break
                try:
                    chunk = c.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b''
                if not chunk:
                    closed = True
                got += chunk
        took = time.monotonic() - t0
        self.assertTrue(closed, 'not closed after %.1fs: %r' % (took, got[-300:]))
        return took, got.decode('latin-1').split('\r\n')

    # -- the attack of the issue -------------------------------------------------

    def test_big_literals_before_login_leave_users_alone(self):
        # max_buffered = 5 x 50 MiB: five unauthenticated connections
        # announcing {52428800} used to take all of it, and every
        # logged-in APPEND got NO [UNAVAILABLE].
        s = self.imap_server(imap={'max_buffered': '250M'})
        user = self.raw(s)
        user.login()
        rss0 = rss_kib(s.proc.pid)
        attackers = [self.raw(s) for _ in range(8)]
        first = []
        for i, a in enumerate(attackers):
            a.send('x%d LOGIN {52428800}\r\n' % i)
            first.append(a.line().decode('latin-1'))
        # a logged-in user's APPEND of a normal message goes through meanwhile
        msg = make_message('while attacked', b'x' * 20000 + b'\r\n')
        _, tagged = user.append_sync('u1', 'INBOX', msg)
        self.assertRegex(tagged, APPENDUID_RE)
        # each announcement was refused before its data: no "+"
        for i, l in enumerate(first):
            self.assertRegex(l, r'^x%d BAD \[TOOBIG\] ' % i)
        # hostile clients send the data anyway: it is read as (too long)
        # command text and dropped, never held
        junk = b'y' * (2 << 20)
        for a in attackers:
            a.send(junk)
        for a in attackers:
            a.send(b'\r\nz NOOP\r\n')
        for a in attackers:
            _, tagged = a.until_tagged('z')
            self.assertRegex(tagged, r'^z OK\b')
        # and a non-synchronizing one closes its connection at once
        nonsync = self.raw(s)
        nonsync.send(b'n1 LOGIN {52428800+}\r\n' + b'p' * 65536)
        lines = nonsync.lines_until_close()
        self.assertTrue(lines and lines[-1].startswith('* BYE'), lines)
        self.assertTrue(nonsync.closed_within(scaled(5)))
        _, tagged = user.append_sync('u2', 'INBOX', msg)
        self.assertRegex(tagged, APPENDUID_RE)
        grew = rss_kib(s.proc.pid) - rss0
        self.assertLess(grew, 64 * 1024, 'RSS grew by %d KiB' % grew)
        self.assertNotIn('literal refused', s.log())

    def test_login_literal_budget_is_separate(self):
        # two sessions before login fill a 64k login budget; the third
        # waits (NO [UNAVAILABLE]), a logged-in user does not notice
        s = self.imap_server(imap={'login_max_literal': '32k', 'login_max_buffered': '64k'})
        user = self.raw(s)
        user.login()
        a, b, c = self.raw(s), self.raw(s), self.raw(s)
        for x in (a, b):
            x.send('l1 LOGIN {32768}\r\n')
            self.assertTrue(x.line().startswith(b'+'))
        c.send('l1 LOGIN {32768}\r\n')
        self.assertRegex(c.line().decode(), r'^l1 NO \[UNAVAILABLE\] ')
        _, tagged = user.append_sync('u1', 'INBOX', make_message('big', b'z' * 200000 + b'\r\n'))
        self.assertRegex(tagged, APPENDUID_RE)
        # over login_max_literal: refused before its data
        c.send('l2 LOGIN {32769}\r\n')
        self.assertRegex(c.line().decode(), r'^l2 BAD \[TOOBIG\] ')
        # the budget comes back when a command ends
        a.send(b'u' * 32768 + b' "pw"\r\n')
        _, tagged = a.until_tagged('l1')
        self.assertRegex(tagged, r'^l1 NO \[AUTHENTICATIONFAILED\] ')
        c.send('l3 LOGIN {32768}\r\n')
        self.assertTrue(c.line().startswith(b'+'))

    def test_line_limit_before_login(self):
        s = self.imap_server()
        c = self.raw(s)
        c.send('a1 NOOP ' + 'x' * 9000 + '\r\n')
        self.assertRegex(c.line().decode(), r'^(a1|\*) BAD .*too long')
        c.send('a2 AUTHENTICATE PLAIN\r\n')
        self.assertTrue(c.line().startswith(b'+'))
        c.send(b'A' * 9000 + b'\r\n')
        self.assertRegex(c.line().decode(), r'^a2 BAD .*too long')
        c.ok('NOOP')
        # after login the same line is only a bad NOOP
        c.login()
        _, tagged = c.command('NOOP ' + 'x' * 9000)
        self.assertRegex(tagged, r'^a\d+ BAD NOOP takes no arguments')

    def test_longest_logins_still_work(self):
        # a 500-octet password (libxcrypt hashes 511 at most) full of what must be escaped, through
        # imaplib (quoted), literals, SASL-IR and a SASL response line
        password = ('p"a\\s s' * 72)[:500]
        s = self.imap_server()
        s.add_user(ERIN, password=password)
        host, port = s.addr('imap')
        with imaplib.IMAP4(host, port, timeout=scaled(20)) as m:
            typ, _ = m.login(ERIN, password)
            self.assertEqual(typ, 'OK')
            m.logout()
        c = self.raw(s)
        c.send('l1 LOGIN {%d}\r\n' % len(ERIN))
        self.assertTrue(c.line().startswith(b'+'))
        c.send('%s {%d}\r\n' % (ERIN, len(password)))
        self.assertTrue(c.line().startswith(b'+'))
        c.send(password + '\r\n')
        _, tagged = c.until_tagged('l1')
        self.assertRegex(tagged, r'^l1 OK\b')
        ir = base64.b64encode(b'\0' + ERIN.encode() + b'\0' + password.encode()).decode()
        c = self.raw(s)
        _, tagged = c.command('AUTHENTICATE PLAIN ' + ir)
        self.assertRegex(tagged, r'^a\d+ OK\b')
        c = self.raw(s)
        c.send('p1 AUTHENTICATE PLAIN\r\n')
        self.assertTrue(c.line().startswith(b'+'))
        c.send(ir + '\r\n')
        _, tagged = c.until_tagged('p1')
        self.assertRegex(tagged, r'^p1 OK\b')
        c = self.raw(s)
        c.ok('LOGIN %s %s' % (quoted(ERIN), quoted(password)))

    # -- the login deadline --------------------------------------------------------

    def test_trickling_client_closed_by_login_timeout(self):
        s = self.imap_server(imap={'login_timeout': '2s'})
        c = self.raw(s)
        took, lines = self.trickle_until_closed(c, b'a1 NOOP', 0.2, scaled(10))
        self.assertIn('* BYE Login timed out', lines)
        self.assertGreaterEqual(took, 1.5)
        self.assertLess(took, scaled(5))

    def test_failed_logins_do_not_extend_the_deadline(self):
        # many failures allowed and no delays: only the deadline can end it
        s = self.imap_server(imap={'login_timeout': '2s', 'max_auth_failures': '100'}, auth={'auth_delay_base': '0', 'lockout_failures': '0'})
        c = self.raw(s)
        t0 = time.monotonic()
        replies = []
        try:
            while time.monotonic() - t0 < scaled(10):
                _, tagged = c.command('LOGIN "%s" "wrong"' % ALICE)
                replies.append(tagged)
                time.sleep(0.3)
        except (EOFError, OSError):
            pass
        took = time.monotonic() - t0
        self.assertGreaterEqual(len(replies), 2, replies)   # yescrypt under ASan is slow
        self.assertTrue(all(re.match(r'^a\d+ NO \[AUTHENTICATIONFAILED\]', r) for r in replies), replies)
        self.assertGreaterEqual(took, 1.5)
        self.assertLess(took, scaled(5))
        self.assertIn('reason=login timeout', s.log())

    def test_logged_in_session_keeps_idle_timeout(self):
        s = self.imap_server(imap={'login_timeout': '2s', 'idle_timeout': '5s'})
        c = self.raw(s)
        c.login()
        time.sleep(3)   # past the login deadline
        c.ok('NOOP')
        t0 = time.monotonic()
        lines = c.lines_until_close()
        took = time.monotonic() - t0
        self.assertTrue(lines and lines[-1].startswith('* BYE Autologout'), lines)
        self.assertGreaterEqual(took, 4)
        self.assertLess(took, scaled(5) + 4)

    def test_config_errors(self):
        s = self.imap_server()
        s.stop()
        for key, value in (('login_timeout', '0'), ('login_timeout', '2h'), ('login_max_literal', '1k'),
                           ('login_max_literal', '2M'), ('login_max_buffered', '1k')):
            with self.subTest(key=key, value=value):
                s.write_config(listeners=IMAP_LISTENERS, imap={key: value})
                p = s.cli('check')
                self.assertNotEqual(p.returncode, 0)
                self.assertRegex(p.stderr, re.escape(s.config_path) + r':\d+: .*%s' % key)
        s.write_config(listeners=IMAP_LISTENERS, imap={'login_max_literal': '64k', 'login_max_buffered': '64k'})
        self.assertEqual(s.cli('check').returncode, 0)
        s.write_config(listeners=IMAP_LISTENERS, imap={'login_max_literal': '128k', 'login_max_buffered': '64k'})
        p = s.cli('check')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('login_max_buffered', p.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
