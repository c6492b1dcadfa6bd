"""IMAP AUTHENTICATE through GNU SASL (issue 10; RFC 3501 6.2.2, SASL-IR
RFC 4959, SCRAM RFC 5802/7677 with channel binding) with real clients:
Python's imaplib with a hand-made SCRAM-SHA-256 client over STARTTLS,
GNU SASL's gsasl (SCRAM-SHA-256 and SCRAM-SHA-256-PLUS), mbsync (isync
through Cyrus SASL's SCRAM plugin, Debian libsasl2-modules), and raw
sockets for SASL-IR, cancelling and the plaintext policy. Every TLS client
verifies the server's certificate against the test CA.

Listeners (IMAP_LISTENERS): "imap" (STARTTLS offered,
allow_plaintext_auth at its default, loopback), "imaps" (implicit TLS) and
"imapnp" (STARTTLS offered, allow_plaintext_auth = no).
"""

import base64
import imaplib
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from buzon_test import ALICE, PASSWORD, RawIMAP, TLSTestCase, scaled, subprocess_env
from test_smtp_auth import Scram, b64, output, plain_ir, run

IMAP_LISTENERS = {
    'imap': ('imap', '127.0.0.1:0', {'tls': 'starttls'}),
    'imaps': ('imap', '127.0.0.1:0', {'tls': 'implicit'}),
    'imapnp': ('imap', '127.0.0.1:0', {'tls': 'starttls', 'allow_plaintext_auth': 'no'}),
}


def caps_of(line):
    m = re.search(r'\[CAPABILITY ([^\]]*)\]', line) or re.match(r'^\* CAPABILITY (.*)$', line)
    assert m, line
    return m.group(1).split()


class IMAPAuth(TLSTestCase):

    def need(self, binary, package=None):
        if not shutil.which(binary):
            self.skipTest('%s is not installed (Debian package: %s)' % (binary, package or binary))

    def server(self, **kw):
        return self.tls_server(listeners=IMAP_LISTENERS, **kw)

    def raw(self, s, listener='imap', tls=None):
        c = RawIMAP(s.addr(listener), tls=tls)
        self.addCleanup(c.close)
        return c

    def starttls(self, s, listener='imap'):
        c = self.raw(s, listener)
        _, tagged = c.cmd('STARTTLS')
        self.assertRegex(tagged, r'^OK\b')
        c.start_tls(self.ctx)
        return c

    def caps(self, c):
        untagged, tagged = c.cmd('CAPABILITY')
        self.assertRegex(tagged, r'^OK\b')
        return caps_of(untagged[0])

    def assertNoSecretLogged(self, s, *secrets):
        log = s.log()
        for secret in (PASSWORD,) + secrets:
            self.assertNotIn(secret, log, 'a secret is in the log')
            self.assertNotIn(b64(secret), log, 'a secret (base64) is in the log')

    # -- what is offered where -------------------------------------------------

    def test_mechanisms_offered(self):
        s = self.server()
        # in clear on loopback (allow_plaintext_auth = loopback): everything but -PLUS
        caps = self.caps(self.raw(s, 'imap'))
        for m in ('AUTH=SCRAM-SHA-256', 'AUTH=SCRAM-SHA-1', 'AUTH=PLAIN', 'AUTH=LOGIN', 'STARTTLS'):
            self.assertIn(m, caps)
        self.assertNotIn('LOGINDISABLED', caps)
        self.assertFalse([c for c in caps if c.endswith('-PLUS')], caps)
        # under TLS: the -PLUS variants too (channel binding)
        caps = self.caps(self.starttls(s, 'imap'))
        for m in ('AUTH=SCRAM-SHA-256-PLUS', 'AUTH=SCRAM-SHA-1-PLUS', 'AUTH=SCRAM-SHA-256', 'AUTH=PLAIN'):
            self.assertIn(m, caps)
        self.assertNotIn('STARTTLS', caps)
        caps = self.caps(self.raw(s, 'imaps', tls=self.ctx))
        self.assertIn('AUTH=SCRAM-SHA-256-PLUS', caps)
        self.assertIn('AUTH=PLAIN', caps)

    def test_plaintext_auth_no_in_clear(self):
        s = self.server()
        c = self.raw(s, 'imapnp')
        greeting = c.greeting.decode()
        self.assertIn('LOGINDISABLED', caps_of(greeting))
        caps = self.caps(c)
        self.assertIn('LOGINDISABLED', caps)
        self.assertIn('AUTH=SCRAM-SHA-256', caps)
        self.assertNotIn('AUTH=PLAIN', caps)
        self.assertNotIn('AUTH=LOGIN', caps)
        _, tagged = c.cmd('LOGIN "%s" "%s"' % (ALICE, PASSWORD))
        self.assertRegex(tagged, r'^NO \[PRIVACYREQUIRED\]')
        _, tagged = c.cmd('AUTHENTICATE PLAIN ' + plain_ir(ALICE, PASSWORD))
        self.assertRegex(tagged, r'^NO \[PRIVACYREQUIRED\]')
        _, tagged = c.cmd('AUTHENTICATE LOGIN')
        self.assertRegex(tagged, r'^NO \[PRIVACYREQUIRED\]')
        # SCRAM sends no password: allowed in clear
        self.assertRegex(self.scram_raw(c, 'SCRAM-SHA-256', Scram('sha256', ALICE, PASSWORD)), r'^a\d+ OK \[CAPABILITY ')
        # after STARTTLS on the same listener, PLAIN is fine
        c = self.starttls(s, 'imapnp')
        caps = self.caps(c)
        self.assertNotIn('LOGINDISABLED', caps)
        self.assertIn('AUTH=PLAIN', caps)
        _, tagged = c.cmd('AUTHENTICATE PLAIN ' + plain_ir(ALICE, PASSWORD))
        self.assertRegex(tagged, r'^OK \[CAPABILITY ')

    # -- SCRAM by hand over raw sockets: SASL-IR and the final v= ---------------

    def scram_raw(self, c, mech, sc, ir=True):
        """AUTHENTICATE mech with the hand-made client sc on RawIMAP c; the
        tagged line. The "+ v=" challenge must carry the server signature."""
        tag = c.tag()
        if ir:
            c.send(('%s AUTHENTICATE %s %s\r\n' % (tag, mech, b64(sc.first()))).encode())
        else:
            c.send(('%s AUTHENTICATE %s\r\n' % (tag, mech)).encode())
            self.assertEqual(c.line(), b'+ ')
            c.send((b64(sc.first()) + '\r\n').encode())
        l = c.line()
        if not l.startswith(b'+ '):
            return l.decode()
        c.send((b64(sc.final(base64.b64decode(l[2:]))) + '\r\n').encode())
        l = c.line()
        if not l.startswith(b'+ '):
            return l.decode()
        self.assertEqual(base64.b64decode(l[2:]).decode(), 'v=' + b64(sc.server_signature))
        c.send(b'\r\n')
        _, tagged = c.until_tagged(tag)
        return tagged

    def test_scram_sasl_ir_implicit_tls(self):
        s = self.server()
        c = self.raw(s, 'imaps', tls=self.ctx)
        tagged = self.scram_raw(c, 'SCRAM-SHA-256', Scram('sha256', ALICE, PASSWORD))
        self.assertRegex(tagged, r'^a\d+ OK \[CAPABILITY ')
        c.ok('SELECT INBOX')
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256 user=%s client=' % re.escape(ALICE))
        # SCRAM-SHA-1 without an initial response
        c = self.raw(s, 'imaps', tls=self.ctx)
        tagged = self.scram_raw(c, 'scram-sha-1', Scram('sha1', ALICE, PASSWORD), ir=False)
        self.assertRegex(tagged, r'^a\d+ OK \[CAPABILITY ')
        self.assertNoSecretLogged(s)

    def test_scram_wrong_password_cancel_and_garbage(self):
        s = self.server(users=('alice', 'bob'))
        c = self.starttls(s)
        tagged = self.scram_raw(c, 'SCRAM-SHA-256', Scram('sha256', ALICE, 'not the password'))
        self.assertRegex(tagged, r'^a\d+ NO \[AUTHENTICATIONFAILED\] ')
        self.wait_log(s, r'auth failed mech=SCRAM-SHA-256 user=%s client=' % re.escape(ALICE))
        # an unknown user fails at the same place with the same reply
        tagged2 = self.scram_raw(c, 'SCRAM-SHA-256', Scram('sha256', 'ghost@example.test', PASSWORD))
        self.assertEqual(tagged.split(' ', 1)[1], tagged2.split(' ', 1)[1])
        # "*" cancels: BAD
        c.send(b'x1 AUTHENTICATE SCRAM-SHA-256\r\n')
        self.assertEqual(c.line(), b'+ ')
        c.send(b'*\r\n')
        _, tagged = c.until_tagged('x1')
        self.assertRegex(tagged, r'^x1 BAD\b')
        # not base64, and not a SCRAM message: BAD
        _, tagged = c.command('AUTHENTICATE SCRAM-SHA-256 !!!!')
        self.assertRegex(tagged, r'^a\d+ BAD\b')
        _, tagged = c.command('AUTHENTICATE SCRAM-SHA-256 ' + b64('hello'))
        self.assertRegex(tagged, r'^a\d+ BAD\b')
        # an unknown mechanism: NO
        _, tagged = c.command('AUTHENTICATE CRAM-MD5')
        self.assertRegex(tagged, r'^a\d+ NO\b')
        # still usable
        c.ok('NOOP')
        self.assertNoSecretLogged(s, 'not the password')

    # -- imaplib ------------------------------------------------------------------

    def test_imaplib_scram_sha256_starttls(self):
        s = self.server()
        host, port = s.addr('imap')
        sc = Scram('sha256', ALICE, PASSWORD)
        state = {'step': 0}

        def respond(challenge):
            state['step'] += 1
            if state['step'] == 1:
                self.assertEqual(challenge, b'')
                return sc.first()
            if state['step'] == 2:
                return sc.final(challenge)
            self.assertEqual(challenge.decode(), 'v=' + b64(sc.server_signature))
            return b''

        with imaplib.IMAP4(host, port, timeout=scaled(20)) as m:
            m.starttls(ssl_context=self.ctx)
            self.assertIn('AUTH=SCRAM-SHA-256-PLUS', m.capabilities)
            typ, _ = m.authenticate('SCRAM-SHA-256', respond)
            self.assertEqual(typ, 'OK')
            self.assertEqual(state['step'], 3)
            typ, _ = m.select('INBOX')
            self.assertEqual(typ, 'OK')
            m.logout()
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256 user=%s' % re.escape(ALICE))
        # PLAIN through imaplib too
        with imaplib.IMAP4(host, port, timeout=scaled(20)) as m:
            m.starttls(ssl_context=self.ctx)
            typ, _ = m.authenticate('PLAIN', lambda ch: ('\0%s\0%s' % (ALICE, PASSWORD)).encode())
            self.assertEqual(typ, 'OK')
            m.logout()
        self.assertNoSecretLogged(s)

    # -- failed SASL logins count in the shared lockout -----------------------------

    def test_failed_scram_counts(self):
        s = self.server()
        c = self.starttls(s)
        for _ in range(2):
            tagged = self.scram_raw(c, 'SCRAM-SHA-256', Scram('sha256', ALICE, 'wrong'))
            self.assertRegex(tagged, r'^a\d+ NO \[AUTHENTICATIONFAILED\] ')
        # the server's log reaches the test through a reader thread: wait for
        # both lines rather than count what has arrived by now
        first = self.wait_log(s, r'auth failed mech=SCRAM-SHA-256')
        self.wait_log(s, r'auth failed mech=SCRAM-SHA-256', start=s.log_lines.index(first) + 1)

    # -- gsasl ----------------------------------------------------------------------

    def gsasl(self, s, mech, password=PASSWORD, *extra):
        self.need('gsasl')
        host, port = s.addr('imap')
        return run(['gsasl', '--imap', '--starttls', '--x509-ca-file=' + self.ca.ca_cert, '--mechanism=' + mech,
                    '-a', ALICE, '-p', password, '--verbose'] + list(extra) + [host, str(port)],
                   stdin=subprocess.DEVNULL, timeout=30)

    def test_gsasl_scram_sha256(self):
        s = self.server()
        p = self.gsasl(s, 'SCRAM-SHA-256', PASSWORD, '--no-cb')
        self.assertEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256 user=%s' % re.escape(ALICE))
        self.assertNoSecretLogged(s)

    def test_gsasl_scram_sha256_plus(self):
        s = self.server()
        p = self.gsasl(s, 'SCRAM-SHA-256-PLUS')
        self.assertEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256-PLUS user=%s' % re.escape(ALICE))
        p = self.gsasl(s, 'SCRAM-SHA-256-PLUS', 'not the password')
        self.assertNotEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth failed mech=SCRAM-SHA-256-PLUS')
        self.assertNoSecretLogged(s, 'not the password')

    # -- mbsync (isync, Cyrus SASL) -------------------------------------------------------

    def test_mbsync_scram_sha256(self):
        self.need('mbsync', 'isync')
        if not any(os.path.exists(os.path.join(d, 'libscram.so.2'))
                   for d in ('/usr/lib/x86_64-linux-gnu/sasl2', '/usr/lib/aarch64-linux-gnu/sasl2', '/usr/lib/sasl2')):
            self.skipTest('no Cyrus SASL SCRAM plugin (Debian package: libsasl2-modules)')
        s = self.server()
        host, port = s.addr('imap')
        home = tempfile.mkdtemp(prefix='buzon-mbsync-')
        self.addCleanup(shutil.rmtree, home, True)
        local = os.path.join(home, 'Mail')
        os.makedirs(local)
        rc = os.path.join(home, 'mbsyncrc')
        with open(rc, 'w') as f:
            # isync matches DNS names only, not 127.0.0.1: it is given the
            # server's certificate to trust (as in test_tls_clients)
            f.write('IMAPAccount buzon\nHost %s\nPort %d\nUser %s\nPass "%s"\nSSLType STARTTLS\n'
                    'CertificateFile %s\nAuthMechs SCRAM-SHA-256\n\n'
                    'IMAPStore remote\nAccount buzon\n\n'
                    'MaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n'
                    'Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\n'
                    'SyncState *\nSync Pull\n' % (host, port, ALICE, PASSWORD, self.ca.cert, local, local))
        env = subprocess_env()
        env['HOME'] = home
        p = run(['mbsync', '-c', rc, '-V', 'sync'], env=env)
        self.assertEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256 user=%s' % re.escape(ALICE))
        self.assertNoSecretLogged(s)


if __name__ == '__main__':
    unittest.main()
