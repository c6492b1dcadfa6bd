"""POP3 AUTH through GNU SASL (issue 10; RFC 5034, RFC 5802/7677 SCRAM with
channel binding, RFC 2449 CAPA): Python's poplib and a raw client with the
hand-made SCRAM client of test_smtp_auth.py, and GNU SASL's gsasl as the
SCRAM engine (gsasl 2.2 has no POP3 logon mode, so this test does the POP3
framing and the TLS and pipes the challenges and responses through
`gsasl --client` on stdin/stdout).

fetchmail is not used here: its man page lists no SCRAM (auth any,
password, kerberos, gssapi, cram-md5, otp, ntlm, msn, external, ssh);
its USER/PASS over STLS is in test_tls_clients.py.

Listeners: "pop" (STLS offered, allow_plaintext_auth at its default,
loopback), "pops" (implicit TLS) and "popnp" (STLS offered,
allow_plaintext_auth = no).
"""

import base64
import os
import poplib
import re
import select
import shutil
import socket
import ssl
import subprocess
import time
import unittest

from buzon_test import ALICE, DOMAIN, PASSWORD, RawPOP3, TLSTestCase, scaled, subprocess_env
from test_smtp_auth import Scram, b64, plain_ir

LISTENERS = {
    'mx': ('smtp', '127.0.0.1:0', {'tls': 'starttls'}),
    'pop': ('pop3', '127.0.0.1:0', {'tls': 'starttls'}),
    'pops': ('pop3', '127.0.0.1:0', {'tls': 'implicit'}),
    'popnp': ('pop3', '127.0.0.1:0', {'tls': 'starttls', 'allow_plaintext_auth': 'no'}),
}

PLAINTEXT_REFUSED = b'-ERR [AUTH] Plaintext authentication disallowed on non-secure connections'


def sasl_mechs(caps):
    for l in caps:
        w = l.split()
        if w and w[0] == 'SASL':
            return w[1:]
    return []


def pop3_scram(c, sc, mech):
    """Runs AUTH mech with the hand-made Scram sc on RawPOP3 c; returns the
    last reply. A "v=" challenge must carry the right server signature."""
    r = c.cmd('AUTH %s %s' % (mech, b64(sc.first())))
    if not r.startswith(b'+ '):
        return r
    r = c.cmd(b64(sc.final(base64.b64decode(r[2:]))))
    if not r.startswith(b'+ '):
        return r
    v = base64.b64decode(r[2:]).decode()
    if v != 'v=' + b64(sc.server_signature):
        raise AssertionError('wrong server signature %r (want v=%s)' % (v, b64(sc.server_signature)))
    return c.cmd('')


class SourcePOP3(RawPOP3):
    """RawPOP3 from a chosen loopback source address."""

    def __init__(self, addr, source, timeout=20.0):
        self.sock = socket.create_connection(addr, timeout=scaled(timeout), source_address=(source, 0))
        self.buf = b''
        self.greeting = self.line()


class POP3Auth(TLSTestCase):

    def need(self, binary, package=None):
        if not shutil.which(binary):
            self.skipTest('%s is not installed (Debian package: %s)' % (binary, package or binary))

    def server(self, **kw):
        return self.tls_server(listeners=LISTENERS, **kw)

    def raw(self, s, listener='pop'):
        c = RawPOP3(s.addr(listener))
        self.addCleanup(c.close)
        self.assertTrue(c.greeting.startswith(b'+OK'), c.greeting)
        return c

    def stls(self, s, listener='pop', ctx=None):
        c = self.raw(s, listener)
        self.assertTrue(c.cmd('STLS').startswith(b'+OK'))
        c.start_tls(ctx or self.ctx)
        return c

    def assertNoSecretLogged(self, s, *secrets):
        log = s.log()
        for secret in (PASSWORD,) + secrets:
            self.assertNotIn(secret, log, 'a secret is in the log')
            self.assertNotIn(b64(secret), log, 'a secret (base64) is in the log')

    # -- what is offered where ---------------------------------------------------

    def test_capa_and_auth_list(self):
        s = self.server()
        c = self.raw(s)
        caps = c.capa()
        mechs = sasl_mechs(caps)
        self.assertTrue({'SCRAM-SHA-256', 'SCRAM-SHA-1'} <= set(mechs), caps)
        self.assertFalse([m for m in mechs if m.endswith('-PLUS')], '-PLUS only under TLS: %r' % caps)
        # loopback (the default) and we come from 127.0.0.1
        self.assertTrue({'PLAIN', 'LOGIN'} <= set(mechs), caps)
        self.assertIn('USER', caps)
        self.assertEqual(c.cmd('AUTH'), b'+OK')
        self.assertEqual([m.decode() for m in c.multi()], mechs, 'AUTH lists what CAPA says')
        self.assertTrue(c.cmd('STLS').startswith(b'+OK'))
        c.start_tls(self.ctx)
        mechs = sasl_mechs(c.capa())
        self.assertTrue({'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN',
                         'LOGIN'} <= set(mechs), mechs)
        self.assertEqual(mechs[0], 'SCRAM-SHA-256-PLUS', 'strongest first')
        # implicit TLS the same
        c2 = RawPOP3(s.addr('pops'), tls=self.ctx)
        self.addCleanup(c2.close)
        self.assertEqual(sasl_mechs(c2.capa()), mechs)

    def test_plaintext_auth_no_in_clear(self):
        s = self.server()
        c = self.raw(s, 'popnp')
        caps = c.capa()
        self.assertNotIn('USER', caps, 'allow_plaintext_auth = no: no USER in clear')
        mechs = sasl_mechs(caps)
        self.assertIn('SCRAM-SHA-256', mechs)
        self.assertFalse({'PLAIN', 'LOGIN'} & set(mechs), caps)
        self.assertEqual(c.cmd('USER ' + ALICE), PLAINTEXT_REFUSED)
        self.assertTrue(c.cmd('PASS ' + PASSWORD).startswith(b'-ERR'))
        self.assertEqual(c.cmd('AUTH PLAIN ' + plain_ir(ALICE, PASSWORD)), PLAINTEXT_REFUSED)
        self.assertEqual(c.cmd('AUTH LOGIN'), PLAINTEXT_REFUSED)
        self.assertTrue(c.cmd('STAT').startswith(b'-ERR'))
        # SCRAM does not send the password: fine in clear
        self.assertTrue(pop3_scram(c, Scram('sha256', ALICE, PASSWORD), 'SCRAM-SHA-256').startswith(b'+OK'))
        self.assertTrue(c.cmd('STAT').startswith(b'+OK 0 0'))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))
        # under TLS USER/PASS and PLAIN are offered and work
        c = self.stls(s, 'popnp')
        caps = c.capa()
        self.assertIn('USER', caps)
        self.assertIn('PLAIN', sasl_mechs(caps))
        self.assertTrue(c.login().startswith(b'+OK'))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))
        c = self.stls(s, 'popnp')
        self.assertTrue(c.cmd('AUTH PLAIN ' + plain_ir(ALICE, PASSWORD)).startswith(b'+OK'))
        self.wait_log(s, r'auth ok mech=PLAIN user=%s client=127\.0\.0\.1' % re.escape(ALICE))
        self.assertNoSecretLogged(s)

    # -- poplib and the hand-made SCRAM ------------------------------------------

    def test_poplib_stls_scram_sha256(self):
        s = self.server()
        host, port = s.addr('pop')
        p = poplib.POP3(host, port, timeout=scaled(30))
        self.addCleanup(p.close)
        p.stls(context=self.ctx)
        self.assertIn('SCRAM-SHA-256', p.capa()['SASL'])
        sc = Scram('sha256', ALICE, PASSWORD)
        r = p._shortcmd('AUTH SCRAM-SHA-256 ' + b64(sc.first()))
        self.assertTrue(r.startswith(b'+ '), r)
        r = p._shortcmd(b64(sc.final(base64.b64decode(r[2:]))))
        self.assertEqual(r, b'+ ' + b64('v=' + b64(sc.server_signature)).encode())
        r = p._shortcmd('')
        self.assertTrue(r.startswith(b'+OK'), r)
        self.assertEqual(p.stat(), (0, 0))
        p.quit()
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256 user=%s client=127\.0\.0\.1' % re.escape(ALICE))
        self.assertNoSecretLogged(s)

    def test_scram_wrong_password_and_unknown_user_alike(self):
        s = self.server()
        replies = []
        for user, pw in ((ALICE, 'wrong'), ('nobody@' + DOMAIN, PASSWORD)):
            c = self.stls(s)
            replies.append(pop3_scram(c, Scram('sha256', user, pw), 'SCRAM-SHA-256'))
            c.close()
        self.assertEqual(set(replies), {b'-ERR [AUTH] Authentication failed'}, replies)
        self.wait_log(s, r'auth failed mech=SCRAM-SHA-256 user=nobody@')
        self.assertNoSecretLogged(s, 'wrong')

    def test_cancel_and_malformed(self):
        s = self.server()
        c = self.stls(s)
        self.assertEqual(c.cmd('AUTH SCRAM-SHA-256'), b'+ ')
        self.assertEqual(c.cmd('*'), b'-ERR Authentication cancelled')
        r = c.cmd('AUTH SCRAM-SHA-256 ' + b64(Scram('sha256', ALICE, PASSWORD).first()))
        self.assertTrue(r.startswith(b'+ '), r)
        self.assertEqual(c.cmd('*'), b'-ERR Authentication cancelled')
        self.assertEqual(c.cmd('AUTH SCRAM-SHA-256 !!!'), b'-ERR Malformed SASL response')
        self.assertEqual(c.cmd('AUTH SCRAM-SHA-256 ' + b64('not scram')), b'-ERR Malformed SASL response')
        self.assertEqual(c.cmd('AUTH KERBEROS_V4'), b'-ERR Unsupported authentication mechanism')
        self.assertTrue(c.cmd('STAT').startswith(b'-ERR'))
        # still usable: PLAIN with an empty initial response, then the response
        self.assertEqual(c.cmd('AUTH PLAIN'), b'+ ')
        self.assertTrue(c.cmd(plain_ir(ALICE, PASSWORD)).startswith(b'+OK'))

    def test_scram_plus_tls12_handmade(self):
        s = self.server()
        ctx12 = self.ca.client_context()
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        c = self.stls(s, ctx=ctx12)
        self.assertIn('SCRAM-SHA-256-PLUS', sasl_mechs(c.capa()))
        good = c.sock.get_channel_binding('tls-unique')
        self.assertTrue(good)
        bad = bytes([good[0] ^ 1]) + good[1:]
        r = pop3_scram(c, Scram('sha256', ALICE, PASSWORD, gs2='p=tls-unique,,', cbdata=bad), 'SCRAM-SHA-256-PLUS')
        self.assertEqual(r, b'-ERR [AUTH] Authentication failed', 'a wrong channel binding is refused')
        r = pop3_scram(c, Scram('sha256', ALICE, PASSWORD, gs2='p=tls-unique,,', cbdata=good),
                       'SCRAM-SHA-256-PLUS')
        self.assertTrue(r.startswith(b'+OK'), r)
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256-PLUS user=%s' % re.escape(ALICE))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))    # releases the maildrop
        # and on implicit TLS
        c2 = RawPOP3(s.addr('pops'), tls=ctx12)
        self.addCleanup(c2.close)
        cb = c2.sock.get_channel_binding('tls-unique')
        r = pop3_scram(c2, Scram('sha1', ALICE, PASSWORD, gs2='p=tls-unique,,', cbdata=cb), 'SCRAM-SHA-1-PLUS')
        self.assertTrue(r.startswith(b'+OK'), r)

    def test_scram_plus_not_in_clear(self):
        s = self.server()
        c = self.raw(s)
        r = c.cmd('AUTH SCRAM-SHA-256-PLUS ' + b64('p=tls-unique,,n=%s,r=abcdefgh' % ALICE))
        self.assertEqual(r, b'-ERR Unsupported authentication mechanism')

    # -- gsasl as the SCRAM engine -----------------------------------------------

    def gsasl_engine(self, c, mech, password=PASSWORD, user=ALICE):
        """Runs AUTH mech on c with `gsasl --client` computing every response;
        returns the last reply."""
        self.need('gsasl')
        p = subprocess.Popen(['gsasl', '--client', '--quiet', '--no-cb', '--mechanism=' + mech, '-a', user,
                              '-p', password], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=subprocess_env())
        buf = [b'']

        def readline():
            deadline = time.monotonic() + scaled(20)
            while b'\n' not in buf[0]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError('gsasl says nothing (pending %r)' % buf[0])
                r, _, _ = select.select([p.stdout], [], [], left)
                if r:
                    chunk = os.read(p.stdout.fileno(), 4096)
                    if not chunk:
                        return None      # gsasl ended
                    buf[0] += chunk
            line, buf[0] = buf[0].split(b'\n', 1)
            return line.strip()
        try:
            self.assertEqual(readline(), mech.encode())
            r = c.cmd(b'AUTH ' + mech.encode() + b' ' + readline())
            while r.startswith(b'+ ') or r == b'+':
                p.stdin.write(r[2:] + b'\n')
                p.stdin.flush()
                resp = readline()
                # after the server's "v=" gsasl may end without a line: the
                # answer to that last challenge is empty anyway
                r = c.cmd(resp or b'')
            return r
        finally:
            p.kill()
            p.wait()
            p.stdin.close()
            p.stdout.close()
            p.stderr.close()

    def test_gsasl_scram_sha256_over_stls(self):
        s = self.server()
        c = self.stls(s)
        r = self.gsasl_engine(c, 'SCRAM-SHA-256')
        self.assertTrue(r.startswith(b'+OK'), r)
        self.assertTrue(c.cmd('STAT').startswith(b'+OK 0 0'))
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256 user=%s' % re.escape(ALICE))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))    # releases the maildrop
        c = self.stls(s)
        self.assertEqual(self.gsasl_engine(c, 'SCRAM-SHA-256', 'not the password'),
                         b'-ERR [AUTH] Authentication failed')
        c = self.stls(s)
        r = self.gsasl_engine(c, 'SCRAM-SHA-1')
        self.assertTrue(r.startswith(b'+OK'), r)
        self.assertNoSecretLogged(s, 'not the password')

    # -- the shared lockout ------------------------------------------------------

    def test_sasl_failures_count_in_lockout(self):
        s = self.server(auth={'lockout_failures': '3', 'lockout_window': '1m', 'lockout_time': '1h',
                              'auth_delay_base': '0'},
                        pop3={'max_auth_failures': '10'})
        c = SourcePOP3(s.addr('pop'), '127.0.0.2')
        self.addCleanup(c.close)
        for i in range(2):
            self.assertEqual(c.cmd('AUTH PLAIN ' + plain_ir(ALICE, 'wrong%d' % i)),
                             b'-ERR [AUTH] Authentication failed')
        self.assertEqual(pop3_scram(c, Scram('sha256', ALICE, 'wrong2'), 'SCRAM-SHA-256'),
                         b'-ERR [AUTH] Authentication failed')
        c.close()
        self.wait_log(s, r'auth failed mech=SCRAM-SHA-256 user=%s client=127\.0\.0\.2' % re.escape(ALICE))
        c = SourcePOP3(s.addr('pop'), '127.0.0.2')
        self.addCleanup(c.close)
        self.assertTrue(c.greeting.startswith(b'-ERR [SYS/TEMP]'), c.greeting)
        # another address still gets in, with SCRAM, at once
        c = SourcePOP3(s.addr('pop'), '127.0.0.3')
        self.addCleanup(c.close)
        t = time.monotonic()
        self.assertTrue(pop3_scram(c, Scram('sha256', ALICE, PASSWORD), 'SCRAM-SHA-256').startswith(b'+OK'))
        self.assertLess(time.monotonic() - t, scaled(5))


if __name__ == '__main__':
    unittest.main(verbosity=2)
