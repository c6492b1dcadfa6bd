"""POP3 (issue 3): mail sent over SMTP to the real binary, then collected by
real clients (Python's poplib, fetchmail, getmail6, curl) and by a raw socket
client that checks every octet.

What is compared: the message as the SMTP client sent it (CRLF line ends)
against what a POP3 client retrieved, apart from the trace headers added on
the way (Return-Path, Delivered-To, Received, by buzon and by fetchmail).
"""

import base64
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time
import unittest

from buzon_test import (POP3_LISTENERS, PASSWORD, BuzonTestCase, RawSocket, make_message, scaled,
                        split_delivered, stored_form, subprocess_env)

ALICE = 'alice@example.test'
BOB = 'bob@example.test'
CAROL = 'carol@example.test'
SENDER = 'sender@client.example.org'
UIDL_RE = re.compile(rb'^[\x21-\x7e]{1,70}$')
ADDED = ['delivered-to', 'received', 'return-path']

BODIES = [
    b'Hello.\r\n',
    # dot-stuffing both ways: SMTP and POP3
    b'.\r\n..\r\n.leading dot\r\n. \r\nlast\r\n',
    # blank lines, white space, 8-bit text
    b'\r\n\r\n  indented\t\r\ntrailing space \r\ncaf\xc3\xa9 \xe2\x82\xac\r\n\r\n',
    # a line of 998 octets, the longest SMTP allows
    b'x' * 998 + b'\r\nshort\r\n',
]


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, timeout=scaled(60), env=kw.pop('env', subprocess_env()),
                          **kw)


class RawPOP3(RawSocket):
    """A byte-exact POP3 client: every reply line must end in CRLF."""

    def __init__(self, addr, timeout=20.0, source=None):
        self.sock = socket.create_connection(addr, timeout=scaled(timeout),
                                             source_address=(source, 0) if source else None)
        self.buf = b''
        self.greeting = self.line()

    def line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('connection closed; pending %r' % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        if b'\n' in line:
            raise AssertionError('bare LF in reply line %r' % line)
        return line

    def cmd(self, line):
        self.send((line if isinstance(line, bytes) else line.encode()) + b'\r\n')
        return self.line()

    def multi(self):
        """The lines of a multi-line reply after its status line, unstuffed."""
        out = []
        while True:
            l = self.line()
            if l == b'.':
                return out
            out.append(l[1:] if l.startswith(b'.') else l)

    def login(self, user=ALICE, password=PASSWORD):
        r = self.cmd('USER ' + user)
        assert r.startswith(b'+OK'), r
        return self.cmd('PASS ' + password)

    def closed_within(self, seconds):
        return self.wait_closed(scaled(seconds))


class POP3Case(BuzonTestCase):
    """A server with an SMTP listener "mx" and a POP3 listener "pop"."""

    def pop3_server(self, pop3=None, start=True):
        s = self.new_server(start=False, users=False, server={'log_level': 'debug'}, pop3=pop3,
                            listeners=POP3_LISTENERS)
        if pop3:
            p = s.cli('check')
            self.assertEqual(p.returncode, 0, p.stderr)
        s.setup_users()
        if start:
            s.start()
        return s

    def restart_same_pop_port(self, s):
        """Restarts the server with its POP3 listener on the port it had."""
        host, port = s.addr('pop')
        s.stop()
        with open(s.config_path) as f:
            text = f.read()
        old = '[listener "pop"]\nprotocol = pop3\naddress = 127.0.0.1:0\n'
        self.assertIn(old, text)
        with open(s.config_path, 'w') as f:
            f.write(text.replace(old, old.replace(':0\n', ':%d\n' % port)))
        s.start()
        self.assertEqual(s.addr('pop'), (host, port))

    def send(self, s, msg, rcpts=(ALICE,)):
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(30)) as c:
            refused = c.sendmail(SENDER, list(rcpts), msg)
        self.assertEqual(refused, {})

    def poplib(self, s, user=ALICE, password=PASSWORD):
        host, port = s.addr('pop')
        p = poplib.POP3(host, port, timeout=scaled(30))
        self.addCleanup(p.close)
        p.user(user)
        p.pass_(password)
        return p

    def raw(self, s, **kw):
        c = RawPOP3(s.addr('pop'), **kw)
        self.addCleanup(c.close)
        return c

    def files(self, s, user=ALICE):
        return s.messages(user, 'new') + s.messages(user, 'cur')

    def assertRetrieved(self, data, sent, added=ADDED):
        """data: a retrieved message (CRLF); sent: what the SMTP client sent."""
        headers, rest = split_delivered(data)
        self.assertEqual(sorted(set(h[0] for h in headers)), added, headers)
        self.assertEqual(rest, sent, 'the message must come back byte for byte')

    def wait_log(self, s, pattern, count=1, timeout=10):
        """Waits until pattern matches count log lines; returns the lines."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            lines = [l for l in s.log().splitlines() if rx.search(l)]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def wait_session_end(self, s, count=1):
        """Waits until count POP3 sessions have logged their close."""
        lines = self.wait_log(s, r'comp=pop3 .*close reason=', count)
        self.assertGreaterEqual(len(lines), count, 'POP3 sessions not closed:\n' + s.log())


class Poplib(POP3Case):

    def test_greeting_and_capa(self):
        s = self.pop3_server()
        host, port = s.addr('pop')
        p = poplib.POP3(host, port, timeout=scaled(30))
        self.addCleanup(p.close)
        self.assertTrue(p.getwelcome().startswith(b'+OK'), p.getwelcome())
        self.assertNotIn(b'<', p.getwelcome(), 'APOP is not offered: no timestamp')
        caps = p.capa()
        for c in ('TOP', 'UIDL', 'USER', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING', 'IMPLEMENTATION'):
            self.assertIn(c, caps)
        # GNU SASL's mechanisms; PLAIN and LOGIN in clear only because we come
        # from loopback (allow_plaintext_auth's default)
        self.assertEqual(caps['SASL'], ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN', 'LOGIN'])
        p.quit()

    def test_retrieve_byte_exact(self):
        s = self.pop3_server()
        sent = [make_message('m%d' % i, b) for i, b in enumerate(BODIES)]
        for m in sent:
            self.send(s, m)
        p = self.poplib(s)
        count, total = p.stat()
        self.assertEqual(count, len(sent))
        resp, listing, _ = p.list()
        sizes = [int(l.split()[1]) for l in listing]
        self.assertEqual([int(l.split()[0]) for l in listing], list(range(1, len(sent) + 1)))
        self.assertEqual(sum(sizes), total)
        for i, m in enumerate(sent):
            resp, lines, octets = p.retr(i + 1)
            self.assertEqual(resp, b'+OK %d octets' % sizes[i])
            data = b'\r\n'.join(lines) + b'\r\n'
            # RFC 1939: the size counts CRLF; it must equal the octets sent
            self.assertEqual(octets, sizes[i])
            self.assertEqual(len(data), sizes[i])
            self.assertRetrieved(data, m)
            # the size is also what the stored file has with CRLF line ends
            stored = [f for f in self.files(s) if stored_form(m) in f]
            self.assertEqual(len(stored), 1)
            self.assertEqual(len(stored[0].replace(b'\n', b'\r\n')), sizes[i])
            one = p.list(i + 1).split()
            self.assertEqual(one, [b'+OK', b'%d' % (i + 1), b'%d' % sizes[i]])
        p.quit()
        # RETR marks nothing: all still there
        self.assertEqual(len(self.files(s)), len(sent))

    def test_top(self):
        s = self.pop3_server()
        m = make_message('top', b'one\r\n.two\r\nthree\r\n')
        self.send(s, m)
        p = self.poplib(s)
        _, full, _ = p.retr(1)
        blank = full.index(b'')
        _, lines, _ = p.top(1, 0)
        self.assertEqual(lines, full[:blank + 1])
        _, lines, _ = p.top(1, 2)
        self.assertEqual(lines, full[:blank + 3])
        self.assertEqual(lines[-1], b'.two')
        _, lines, _ = p.top(1, 100)
        self.assertEqual(lines, full)
        p.quit()

    def test_large_message_streams(self):
        s = self.pop3_server()
        line = b'.' + b'0123456789' * 7 + b'\r\n'
        m = make_message('large', line * 60000)          # about 4.3 MB
        self.send(s, m)
        p = self.poplib(s)
        size = int(p.list(1).split()[2])
        resp, lines, octets = p.retr(1)
        self.assertEqual(octets, size)
        self.assertRetrieved(b'\r\n'.join(lines) + b'\r\n', m)
        p.quit()

    def test_dele_quit_removes(self):
        s = self.pop3_server()
        sent = [make_message('d%d' % i) for i in range(3)]
        for m in sent:
            self.send(s, m)
        p = self.poplib(s)
        uidl = dict(l.split() for l in p.uidl()[1])
        self.assertEqual(p.dele(2), b'+OK Message 2 deleted')
        self.assertEqual(p.stat()[0], 2)
        with self.assertRaisesRegex(poplib.error_proto, 'already deleted'):
            p.retr(2)
        resp = p.quit()
        self.assertTrue(resp.startswith(b'+OK') and b'1 messages deleted' in resp, resp)
        self.assertEqual(len(self.files(s)), 2)
        p = self.poplib(s)
        self.assertEqual(p.stat()[0], 2)
        left = [l.split()[1] for l in p.uidl()[1]]
        self.assertEqual(left, [uidl[b'1'], uidl[b'3']])
        for i, m in enumerate([sent[0], sent[2]]):
            self.assertRetrieved(b'\r\n'.join(p.retr(i + 1)[1]) + b'\r\n', m)
        p.quit()

    def test_rset_and_dropped_connection_remove_nothing(self):
        s = self.pop3_server()
        for i in range(3):
            self.send(s, make_message('r%d' % i))
        p = self.poplib(s)
        p.dele(1)
        p.dele(3)
        self.assertEqual(p.stat()[0], 1)
        p.rset()
        self.assertEqual(p.stat()[0], 3)
        p.quit()
        self.assertEqual(len(self.files(s)), 3)
        # DELE, then the connection drops without QUIT: nothing is removed
        c = self.raw(s)
        self.assertTrue(c.login().startswith(b'+OK'))
        self.assertTrue(c.cmd('DELE 1').startswith(b'+OK'))
        self.assertTrue(c.cmd('DELE 2').startswith(b'+OK'))
        c.close()
        self.wait_session_end(s, 2)
        self.assertEqual(len(self.files(s)), 3)
        p = self.poplib(s)
        self.assertEqual(p.stat()[0], 3)
        p.quit()

    def test_uidl_stable_across_sessions_and_restart(self):
        s = self.pop3_server()
        for i in range(3):
            self.send(s, make_message('u%d' % i))

        def uidls():
            p = self.poplib(s)
            r = [tuple(l.split()) for l in p.uidl()[1]]
            one = p.uidl(2).split()
            p.quit()
            self.assertEqual((one[1], one[2]), r[1])
            return r

        first = uidls()
        self.assertEqual(len(first), 3)
        for n, u in first:
            self.assertRegex(u, UIDL_RE)
        self.assertEqual(len(set(u for _, u in first)), 3, 'UIDLs must be unique')
        self.assertEqual(uidls(), first)
        s.stop()
        s.start()
        self.assertEqual(uidls(), first, 'UIDLs must survive a restart')
        # a new message gets a new UIDL; the old ones stay
        self.send(s, make_message('u3'))
        after = uidls()
        self.assertEqual(after[:3], first)
        self.assertNotIn(after[3][1], [u for _, u in first])

    def test_in_use_and_delivery_during_session(self):
        s = self.pop3_server()
        self.send(s, make_message('before'))
        a = self.poplib(s)
        self.assertEqual(a.stat()[0], 1)
        # a second session of the same user: [IN-USE], the reply code is exact
        c = self.raw(s)
        c.cmd('USER ' + ALICE)
        r = c.cmd('PASS ' + PASSWORD)
        self.assertTrue(r.startswith(b'-ERR [IN-USE]'), r)
        # other users are not affected
        b = self.poplib(s, BOB)
        self.assertEqual(b.stat()[0], 0)
        b.quit()
        # the lock never blocks delivery ...
        self.send(s, make_message('during'))
        self.assertEqual(len(self.files(s)), 2)
        # ... and the new message shows in the next session, not this one
        self.assertEqual(a.stat()[0], 1)
        self.assertEqual(len(a.list()[1]), 1)
        a.quit()
        # the lock is gone as soon as QUIT is answered
        r = c.cmd('PASS ' + PASSWORD)
        self.assertTrue(r.startswith(b'-ERR'), r)   # USER needed again
        self.assertTrue(c.login().startswith(b'+OK'), 'the maildrop must be free after QUIT')
        self.assertEqual(c.cmd('STAT').split()[:2], [b'+OK', b'2'])
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))

    def test_lock_released_when_client_vanishes(self):
        s = self.pop3_server()
        c = self.raw(s)
        self.assertTrue(c.login().startswith(b'+OK'))
        c.close()
        self.wait_session_end(s)
        deadline = time.monotonic() + scaled(5)
        while True:
            d = self.raw(s)
            r = d.login()
            if r.startswith(b'+OK') or time.monotonic() > deadline:
                break
            d.close()
            time.sleep(0.05)
        self.assertTrue(r.startswith(b'+OK'), r)

    def test_bad_credentials(self):
        s = self.pop3_server()
        replies = []
        # from four addresses, so that the failed-login delay stays out of the way
        for i, (user, pw) in enumerate(((ALICE, 'wrong-password-1'), ('nobody@example.test', PASSWORD),
                                        ('not-an-address', 'x'), ('alice@elsewhere.example', PASSWORD))):
            c = self.raw(s, source='127.0.0.%d' % (i + 2))
            self.assertTrue(c.cmd('USER ' + user).startswith(b'+OK'), 'USER never tells')
            replies.append(c.cmd('PASS ' + pw))
            c.close()
        self.assertEqual(set(replies), {b'-ERR [AUTH] Authentication failed'}, replies)
        failed = self.wait_log(s, r'comp=pop3 .*login failed .*client=127\.0\.0\.[2-5] ', 4)
        self.assertEqual(len(failed), 4, s.log())
        log = s.log()
        self.assertIn('login failed user=alice@example.test', log)
        for secret in ('wrong-password-1', PASSWORD):
            self.assertNotIn(secret, log)
        with self.assertRaisesRegex(poplib.error_proto, r'\[AUTH\]'):
            self.poplib(s, ALICE, 'wrong-password-2')

    def test_auth_plain(self):
        s = self.pop3_server()
        ok = base64.b64encode(b'\0' + ALICE.encode() + b'\0' + PASSWORD.encode()).decode()
        bad = base64.b64encode(b'\0' + ALICE.encode() + b'\0nope').decode()
        c = self.raw(s)
        self.assertTrue(c.cmd('AUTH PLAIN ' + ok).startswith(b'+OK'))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))
        c = self.raw(s)
        self.assertEqual(c.cmd('AUTH PLAIN'), b'+ ')
        self.assertTrue(c.cmd(ok).startswith(b'+OK'))
        self.assertTrue(c.cmd('STAT').startswith(b'+OK 0 0'))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))
        c = self.raw(s)
        self.assertEqual(c.cmd('AUTH PLAIN'), b'+ ')
        self.assertTrue(c.cmd('*').startswith(b'-ERR'))
        self.assertEqual(c.cmd('AUTH PLAIN ' + bad), b'-ERR [AUTH] Authentication failed')
        self.assertTrue(c.cmd('AUTH PLAIN !!!').startswith(b'-ERR'))
        self.assertTrue(c.cmd('AUTH KERBEROS_V4').startswith(b'-ERR'))
        self.assertEqual(c.cmd('AUTH'), b'+OK')
        self.assertEqual(c.multi(), [b'SCRAM-SHA-256', b'SCRAM-SHA-1', b'PLAIN', b'LOGIN'])
        self.assertNotIn(PASSWORD, s.log())

    def test_pipelining(self):
        s = self.pop3_server()
        for i in range(2):
            self.send(s, make_message('p%d' % i, b'.x\r\n'))
        c = self.raw(s)
        c.send('USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nRETR 1\r\nUIDL 2\r\nDELE 1\r\nNOOP\r\nQUIT\r\n'
               % (ALICE, PASSWORD))
        self.assertTrue(c.line().startswith(b'+OK'))         # USER
        self.assertTrue(c.line().startswith(b'+OK'))         # PASS
        self.assertTrue(c.line().startswith(b'+OK 2 '))      # STAT
        self.assertTrue(c.line().startswith(b'+OK 2 messages'))
        self.assertEqual(len(c.multi()), 2)
        self.assertTrue(c.line().endswith(b' octets'))
        self.assertEqual(c.multi()[-1], b'.x')
        self.assertRegex(c.line(), rb'^\+OK 2 [\x21-\x7e]+$')
        self.assertEqual(c.line(), b'+OK Message 1 deleted')
        self.assertEqual(c.line(), b'+OK')
        self.assertTrue(c.line().startswith(b'+OK'))         # QUIT
        self.assertTrue(c.closed_within(5))
        self.assertEqual(len(self.files(s)), 1)

    def test_every_command_with_bad_arguments(self):
        s = self.pop3_server()
        self.send(s, make_message('args'))
        c = self.raw(s)
        # AUTHORIZATION state
        for line in ('STAT', 'LIST', 'LIST 1', 'RETR 1', 'DELE 1', 'NOOP', 'RSET', 'TOP 1 1', 'UIDL',
                     'PASS ' + PASSWORD, 'USER', 'USER a b', 'APOP alice 00112233445566778899aabbccddeeff',
                     'STLS', 'CAPA x', 'XYZ', '', 'AUTH X', 'AUTH PLAIN a b'):
            r = c.cmd(line)
            self.assertTrue(r.startswith(b'-ERR'), '%r -> %r' % (line, r))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))
        # TRANSACTION state, in two sessions: each error counts toward
        # max_bad_commands (20), which would end one session
        c = self.raw(s)
        self.assertTrue(c.login().startswith(b'+OK'))
        for line in ('LIST 0', 'LIST 2', 'LIST x', 'LIST -1', 'LIST 1 1', 'LIST 99999999999999999999999',
                     'UIDL 0', 'UIDL abc', 'UIDL 1 2', 'RETR', 'RETR 0', 'RETR 2', 'RETR x',
                     'TOP', 'TOP 1', 'TOP 1 x', 'TOP x 1', 'TOP 1 -1', 'TOP 2 0', 'TOP 1 1 1'):
            r = c.cmd(line)
            self.assertTrue(r.startswith(b'-ERR'), '%r -> %r' % (line, r))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))
        c = self.raw(s)
        self.assertTrue(c.login().startswith(b'+OK'))
        for line in ('DELE', 'DELE 0', 'DELE 2', 'DELE x', 'STAT 1', 'NOOP 1', 'RSET 1', 'QUIT 1',
                     'USER ' + ALICE, 'PASS ' + PASSWORD, 'AUTH PLAIN', 'LAST', 'XTND XMIT', 'RETR\x001'):
            r = c.cmd(line)
            self.assertTrue(r.startswith(b'-ERR'), '%r -> %r' % (line, r))
        r = c.cmd('A' * 3000)
        self.assertEqual(r, b'-ERR Line too long')
        # the session is still good, and nothing was marked
        self.assertEqual(c.cmd('NOOP'), b'+OK')
        self.assertTrue(c.cmd('STAT').startswith(b'+OK 1 '))
        self.assertTrue(c.cmd('DELE 1').startswith(b'+OK'))
        self.assertTrue(c.cmd('DELE 1').startswith(b'-ERR'))
        self.assertTrue(c.cmd('RETR 1').startswith(b'-ERR'))
        self.assertTrue(c.cmd('RSET').startswith(b'+OK'))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))
        self.assertEqual(len(self.files(s)), 1)

    def test_too_many_errors_closes(self):
        s = self.pop3_server()
        c = self.raw(s)
        replies = []
        try:
            for _ in range(100):
                replies.append(c.cmd('BOGUS'))
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        self.assertLess(len(replies), 100)
        self.assertTrue(all(r.startswith(b'-ERR') for r in replies))

    def test_shutdown_during_session_keeps_mail(self):
        s = self.pop3_server()
        self.send(s, make_message('kept'))
        c = self.raw(s)
        self.assertTrue(c.login().startswith(b'+OK'))
        self.assertTrue(c.cmd('DELE 1').startswith(b'+OK'))
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(c.line(), b'-ERR [SYS/TEMP] Server shutting down')
        self.assertTrue(c.closed_within(10))
        self.assertEqual(s.wait_exit(scaled(20)), 0)
        self.assertEqual(len(self.files(s)), 1, 'a session ended by the server removes nothing')


class LoginDelay(POP3Case):
    """Failed logins are slowed down per client address and per user
    (defaults: two free failures, then 1 s, doubling)."""

    def attempt(self, s, user, password, source=None):
        c = self.raw(s, source=source)
        c.cmd('USER ' + user)
        t = time.monotonic()
        r = c.cmd('PASS ' + password)
        took = time.monotonic() - t
        c.close()
        return r, took

    def test_per_address(self):
        s = self.pop3_server()
        r1, t1 = self.attempt(s, ALICE, 'bad1')
        r2, t2 = self.attempt(s, 'x1@example.test', 'bad2')
        r3, t3 = self.attempt(s, 'x2@example.test', 'bad3')
        self.assertEqual({r1, r2, r3}, {b'-ERR [AUTH] Authentication failed'})
        self.assertGreaterEqual(t3, 0.95, 'the third failure from one address waits')
        self.assertGreater(t3, t1 + 0.5)
        # a good password from that address waits too (2 s now), then works
        r4, t4 = self.attempt(s, BOB, PASSWORD)
        self.assertTrue(r4.startswith(b'+OK'), r4)
        self.assertGreaterEqual(t4, 1.9)
        self.assertTrue(self.wait_log(s, r'login delayed ms=1000 client=127\.0\.0\.1'), s.log())
        self.assertTrue(self.wait_log(s, r'login delayed ms=2000 client=127\.0\.0\.1'), s.log())

    def test_per_user(self):
        s = self.pop3_server()
        # one failure each from two addresses: no address has a delay yet
        r1, t1 = self.attempt(s, CAROL, 'bad1', source='127.0.0.2')
        r2, t2 = self.attempt(s, CAROL, 'bad2', source='127.0.0.3')
        # the user's failures do not delay an address without failures of
        # its own (issue 10: the real user's correct password never waits)
        r3, t3 = self.attempt(s, CAROL, 'bad3', source='127.0.0.4')
        self.assertEqual({r1, r2, r3}, {b'-ERR [AUTH] Authentication failed'})
        self.assertLess(t3, 0.9)
        r4, t4 = self.attempt(s, CAROL, PASSWORD, source='127.0.0.5')
        self.assertTrue(r4.startswith(b'+OK'), r4)
        self.assertLess(t4, 0.9)
        # ... but once that address has failed, they do
        self.attempt(s, CAROL, 'bad4', source='127.0.0.2')
        self.attempt(s, CAROL, 'bad5', source='127.0.0.3')
        r6, t6 = self.attempt(s, CAROL, 'bad6', source='127.0.0.4')
        self.assertEqual(r6, b'-ERR [AUTH] Authentication failed')
        self.assertGreaterEqual(t6, 0.95)
        # an unknown user is slowed down the same way (nothing tells them apart)
        self.attempt(s, 'ghost@example.test', 'x', source='127.0.0.6')
        self.attempt(s, 'ghost@example.test', 'x', source='127.0.0.7')
        self.attempt(s, 'ghost@example.test', 'x', source='127.0.0.6')
        self.attempt(s, 'ghost@example.test', 'x', source='127.0.0.7')
        r7, t7 = self.attempt(s, 'ghost@example.test', 'x', source='127.0.0.6')
        self.assertEqual(r7, b'-ERR [AUTH] Authentication failed')
        self.assertGreaterEqual(t7, 0.95)


class Configured(POP3Case):
    """The [pop3] keys of lib/config.c (docs/configuration.md)."""

    def test_idle_timeout(self):
        s = self.pop3_server(pop3={'idle_timeout': '2s'})
        self.send(s, make_message('idle'))
        c = self.raw(s)
        self.assertTrue(c.login().startswith(b'+OK'))
        self.assertTrue(c.cmd('DELE 1').startswith(b'+OK'))
        self.assertEqual(c.line(), b'-ERR Disconnected for inactivity')
        self.assertTrue(c.closed_within(5))
        self.wait_session_end(s)
        self.assertEqual(len(self.files(s)), 1, 'autologout removes nothing')

    def test_max_commands(self):
        s = self.pop3_server(pop3={'max_commands': '5'})
        c = self.raw(s)
        self.assertTrue(c.login().startswith(b'+OK'))
        self.assertEqual(c.cmd('NOOP'), b'+OK')
        self.assertEqual(c.cmd('NOOP'), b'+OK')
        self.assertEqual(c.cmd('NOOP'), b'+OK')
        self.assertTrue(c.cmd('NOOP').startswith(b'-ERR Too many commands'))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))


class RealClients(POP3Case):

    def need(self, program):
        if not shutil.which(program):
            self.skipTest('%s is not installed (apt-get install %s)' % (program, program))

    def test_curl(self):
        self.need('curl')
        s = self.pop3_server()
        sent = [make_message('curl %d' % i, b) for i, b in enumerate(BODIES[:3])]
        for m in sent:
            self.send(s, m)
        host, port = s.addr('pop')
        url = 'pop3://%s:%d/' % (host, port)
        auth = ['--user', '%s:%s' % (ALICE, PASSWORD)]
        p = run(['curl', '-sS'] + auth + [url])
        self.assertEqual(p.returncode, 0, p.stderr)
        listing = [l.split() for l in p.stdout.splitlines()]
        self.assertEqual([int(l[0]) for l in listing], [1, 2, 3])
        for i, m in enumerate(sent):
            p = run(['curl', '-sS'] + auth + [url + str(i + 1)])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(len(p.stdout), int(listing[i][1]))
            self.assertRetrieved(p.stdout, m)
        p = run(['curl', '-sS', '-X', 'UIDL'] + auth + [url])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 3)
        # DELE through curl's custom request, then the maildrop is smaller
        p = run(['curl', '-sS', '-X', 'DELE', '-I'] + auth + [url + '1'])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(self.files(s)), 2)
        # bad credentials fail
        p = run(['curl', '-sS', '--user', ALICE + ':wrong', url])
        self.assertNotEqual(p.returncode, 0)

    def test_fetchmail_to_mda(self):
        self.need('fetchmail')
        s = self.pop3_server()
        sent = [make_message('fetchmail %d' % i, b) for i, b in enumerate(BODIES)]
        for m in sent:
            self.send(s, m)
        home = os.path.join(s.tmp, 'fetchmail-home')
        out = os.path.join(s.tmp, 'fetchmail-out')
        os.makedirs(home)
        os.makedirs(out)
        host, port = s.addr('pop')
        rc = os.path.join(home, '.fetchmailrc')
        with open(rc, 'w') as f:
            f.write('set no bouncemail\nset no syslog\n'
                    'poll %s service %d protocol pop3 auth password\n'
                    '  user "%s" password "%s" is "alice" here\n'
                    '  sslproto \'\'\n'
                    '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n' % (host, port, ALICE, PASSWORD, out))
        os.chmod(rc, 0o600)
        env = subprocess_env()
        env['HOME'] = home
        p = run(['fetchmail', '-f', rc, '-v', '--nodetach'], env=env)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        got = []
        for name in os.listdir(out):
            with open(os.path.join(out, name), 'rb') as f:
                got.append(f.read())
        self.assertEqual(len(got), len(sent))
        # fetchmail hands the MDA LF line ends and adds its own Received
        rest = sorted(split_delivered(g)[1] for g in got)
        self.assertEqual(rest, sorted(stored_form(m) for m in sent))
        for g in got:
            names = [h[0] for h in split_delivered(g)[0]]
            self.assertEqual(names.count('received'), 2, names)
        # fetchmail deletes what it fetched (DELE + QUIT)
        self.assertEqual(self.files(s), [])

    def getmail(self, s, gdir, maildir, delete=False):
        host, port = s.addr('pop')
        rc = os.path.join(gdir, 'getmailrc')
        with open(rc, 'w') as f:
            f.write('[retriever]\ntype = SimplePOP3Retriever\nserver = %s\nport = %d\n'
                    'username = %s\npassword = %s\n\n'
                    '[destination]\ntype = Maildir\npath = %s/\n%s\n'
                    '[options]\nread_all = false\ndelete = %s\ndelivered_to = false\nreceived = false\n'
                    'verbose = 2\n' % (host, port, ALICE, PASSWORD, maildir,
                                       # getmail refuses to deliver as root
                                       'user = nobody\n' if os.geteuid() == 0 else '',
                                       'true' if delete else 'false'))
        p = run(['getmail', '--getmaildir', gdir, '--rcfile', rc])
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        return p.stdout.decode()

    def maildir_files(self, maildir):
        out = []
        for sub in ('new', 'cur'):
            d = os.path.join(maildir, sub)
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), 'rb') as f:
                    out.append(f.read())
        return out

    def test_getmail_to_maildir(self):
        self.need('getmail')
        s = self.pop3_server()
        sent = [make_message('getmail %d' % i, b) for i, b in enumerate(BODIES)]
        for m in sent:
            self.send(s, m)
        gdir = os.path.join(s.tmp, 'getmail')
        maildir = os.path.join(s.tmp, 'Maildir')
        os.makedirs(gdir)
        # getmail delivers as nobody when run as root: it must reach the Maildir
        os.chmod(s.tmp, 0o755)
        for sub in ('', 'new', 'cur', 'tmp'):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
            # getmail refuses to deliver as root: it delivers as nobody
            os.chmod(os.path.join(maildir, sub), 0o777)
        self.getmail(s, gdir, maildir)
        got = self.maildir_files(maildir)
        self.assertEqual(sorted(split_delivered(g)[1] for g in got), sorted(stored_form(m) for m in sent))
        # getmail remembers UIDLs: a second run, and one after a restart,
        # fetch nothing new
        out = self.getmail(s, gdir, maildir)
        self.assertEqual(len(self.maildir_files(maildir)), len(sent), out + '\n' + str(os.listdir(gdir)))
        # getmail keys what it has seen by server and port: keep the port
        self.restart_same_pop_port(s)
        out = self.getmail(s, gdir, maildir)
        self.assertEqual(len(self.maildir_files(maildir)), len(sent), out)
        # a new message is fetched alone; with delete it leaves the server
        new = make_message('getmail new', b'fresh\r\n')
        self.send(s, new)
        self.getmail(s, gdir, maildir, delete=True)
        got = self.maildir_files(maildir)
        self.assertEqual(len(got), len(sent) + 1)
        self.assertIn(stored_form(new), [split_delivered(g)[1] for g in got])


if __name__ == '__main__':
    unittest.main(verbosity=2)
