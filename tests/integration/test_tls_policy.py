"""TLS policy (issue 9): tls = required on each protocol (SMTP 530 5.7.0,
POP3 -ERR and a CAPA without USER and SASL PLAIN, IMAP LOGINDISABLED and
NO [PRIVACYREQUIRED]); STARTTLS twice, on an implicit-TLS port and on a
listener without TLS is refused; clients that offer only TLS 1.0/1.1 or
only CBC-SHA1 suites are refused, logged, and others still served;
`buzon check` on bad certificate/key pairs; certificate = auto.
"""

import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import unittest
import warnings

from buzon_test import (ALICE, HOSTNAME, PASSWORD, TLS_LISTENERS, RawIMAP, RawPOP3, RawSMTP, TLSTestCase,
                        make_message, pem_fingerprint, peer_fingerprint, scaled, subprocess_env)

SENDER = 'sender@client.example.org'

REQUIRED_LISTENERS = {
    'mx': ('smtp', '127.0.0.1:0', {'tls': 'required'}),
    'imap': ('imap', '127.0.0.1:0', {'tls': 'required'}),
    'pop': ('pop3', '127.0.0.1:0', {'tls': 'required'}),
}


def caps_of(line):
    m = re.search(r'\[CAPABILITY ([^\]]*)\]', line) or re.match(r'^\* CAPABILITY (.*)$', line)
    assert m, line
    return m.group(1).split()


class Required(TLSTestCase):

    def test_smtp_required(self):
        s = self.tls_server(listeners=REQUIRED_LISTENERS)
        c = RawSMTP(s.addr('mx'))
        self.addCleanup(c.close)
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertIn('STARTTLS', r.lines)
        # what leads to TLS is served; the rest gets 530 5.7.0
        self.assertReply(c.cmd('NOOP'), 250)
        self.assertReply(c.cmd('RSET'), 250)
        for cmd in ('MAIL FROM:<%s>' % SENDER, 'RCPT TO:<%s>' % ALICE, 'DATA', 'VRFY alice'):
            r = c.cmd(cmd)
            self.assertReply(r, 530, '5.7.0')
        # a refused BDAT's chunk is still read (RFC 3030 2): one reply
        c.send(b'BDAT 5 LAST\r\nxxxxx')
        self.assertReply(c.reply(), 530, '5.7.0')
        self.assertReply(c.cmd('STARTTLS'), 220, '2.0.0')
        c.start_tls(self.ctx)
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertNotIn('STARTTLS', r.lines)
        msg = make_message('required')
        self.assertReply(c.send_message(SENDER, [ALICE], msg, ehlo=False), 250)
        self.assertEqual(len(s.messages(ALICE)), 1)

    def test_smtplib_without_starttls_refused(self):
        s = self.tls_server(listeners=REQUIRED_LISTENERS)
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(20)) as c:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail(SENDER, [ALICE], make_message('clear text'))
            self.assertEqual(cm.exception.smtp_code, 530)
        self.assertNoMail(s)
        # with STARTTLS it goes through
        with smtplib.SMTP(host, port, timeout=scaled(20)) as c:
            c.starttls(context=self.ctx)
            self.assertEqual(c.sendmail(SENDER, [ALICE], make_message('tls')), {})
        self.assertEqual(len(s.messages(ALICE)), 1)

    def test_pop3_required(self):
        s = self.tls_server(listeners=REQUIRED_LISTENERS)
        c = RawPOP3(s.addr('pop'))
        self.addCleanup(c.close)
        caps = c.capa()
        self.assertIn('STLS', caps)
        self.assertNotIn('USER', caps, 'USER must not be offered before TLS')
        sasl = [l for l in caps if l.split()[0] == 'SASL']
        self.assertFalse(any('PLAIN' in l.split() for l in sasl), 'SASL PLAIN must not be offered: %r' % caps)
        for cmd in ('USER ' + ALICE, 'PASS ' + PASSWORD, 'AUTH PLAIN',
                    'APOP %s 0123456789abcdef0123456789abcdef' % ALICE):
            r = c.cmd(cmd)
            self.assertTrue(r.startswith(b'-ERR'), '%s -> %r' % (cmd, r))
        self.assertTrue(c.cmd('NOOP').startswith((b'+OK', b'-ERR')))
        r = c.cmd('STLS')
        self.assertTrue(r.startswith(b'+OK'), r)
        c.start_tls(self.ctx)
        caps = c.capa()
        self.assertIn('USER', caps)
        self.assertNotIn('STLS', caps)
        self.assertTrue(c.login().startswith(b'+OK'))
        self.assertTrue(c.cmd('STAT').startswith(b'+OK 0 0'))

    def test_imap_required(self):
        s = self.tls_server(listeners=REQUIRED_LISTENERS)
        c = RawIMAP(s.addr('imap'))
        self.addCleanup(c.close)
        greeting = c.greeting.decode()
        if '[CAPABILITY' in greeting:
            self.assertIn('LOGINDISABLED', caps_of(greeting))
            self.assertIn('STARTTLS', caps_of(greeting))
        untagged, tagged = c.cmd('CAPABILITY')
        self.assertRegex(tagged, r'^OK\b')
        caps = caps_of(untagged[0])
        self.assertIn('LOGINDISABLED', caps)
        self.assertIn('STARTTLS', caps)
        self.assertNotIn('AUTH=PLAIN', caps)
        _, tagged = c.cmd('LOGIN "%s" "%s"' % (ALICE, PASSWORD))
        self.assertRegex(tagged, r'^NO \[PRIVACYREQUIRED\]')
        _, tagged = c.cmd('AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRlcnkgc3RhcGxl')
        self.assertRegex(tagged, r'^NO \[PRIVACYREQUIRED\]')
        _, tagged = c.cmd('NOOP')
        self.assertRegex(tagged, r'^OK\b')
        _, tagged = c.cmd('ID NIL')
        self.assertRegex(tagged, r'^OK\b')
        _, tagged = c.cmd('STARTTLS')
        self.assertRegex(tagged, r'^OK\b')
        c.start_tls(self.ctx)
        untagged, tagged = c.cmd('CAPABILITY')
        caps = caps_of(untagged[0])
        self.assertNotIn('LOGINDISABLED', caps)
        self.assertNotIn('STARTTLS', caps)
        c.login()
        c.ok('SELECT INBOX')


class Refusals(TLSTestCase):

    def test_smtp_starttls_twice(self):
        s = self.tls_server()
        c = RawSMTP(s.addr('mx'))
        self.addCleanup(c.close)
        c.ehlo()
        self.assertReply(c.cmd('STARTTLS now'), 501, '5.5.4')
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.start_tls(self.ctx)
        c.ehlo()
        self.assertReply(c.cmd('STARTTLS'), 503, '5.5.1')
        # the session goes on inside TLS
        self.assertReply(c.send_message(SENDER, [ALICE], make_message('twice'), ehlo=False), 250)

    def test_smtp_starttls_on_implicit(self):
        s = self.tls_server()
        c = RawSMTP(s.addr('smtps'), tls=self.ctx)
        self.addCleanup(c.close)
        r = c.ehlo()
        self.assertNotIn('STARTTLS', r.lines)
        r = c.cmd('STARTTLS')
        self.assertIn(r.code, (502, 503), r)
        self.assertEqual(r.enhanced, '5.5.1', r)
        self.assertReply(c.cmd('NOOP'), 250)

    def test_smtp_starttls_without_tls(self):
        listeners = dict(TLS_LISTENERS)
        listeners['plain'] = ('smtp', '127.0.0.1:0', {'tls': 'none'})
        s = self.tls_server(listeners=listeners)
        c = RawSMTP(s.addr('plain'))
        self.addCleanup(c.close)
        r = c.ehlo()
        self.assertNotIn('STARTTLS', r.lines)
        r = c.cmd('STARTTLS')
        self.assertIn(r.code, (502, 503), r)
        self.assertEqual(r.enhanced, '5.5.1', r)
        self.assertReply(c.cmd('NOOP'), 250)

    def test_pop3_stls_twice_and_on_implicit(self):
        s = self.tls_server()
        c = RawPOP3(s.addr('pop'))
        self.addCleanup(c.close)
        self.assertTrue(c.cmd('STLS').startswith(b'+OK'))
        c.start_tls(self.ctx)
        r = c.cmd('STLS')
        self.assertTrue(r.startswith(b'-ERR'), r)
        self.assertTrue(c.login().startswith(b'+OK'))
        # STLS after login (TRANSACTION state) is refused as well
        self.assertTrue(c.cmd('STLS').startswith(b'-ERR'))
        self.assertTrue(c.cmd('QUIT').startswith(b'+OK'))    # the maildrop lock goes
        d = RawPOP3(s.addr('pops'), tls=self.ctx)
        self.addCleanup(d.close)
        self.assertNotIn('STLS', d.capa())
        r = d.cmd('STLS')
        self.assertTrue(r.startswith(b'-ERR'), r)
        self.assertTrue(d.login().startswith(b'+OK'))

    def test_pop3_stls_in_transaction_refused(self):
        s = self.tls_server()
        c = RawPOP3(s.addr('pop'))
        self.addCleanup(c.close)
        self.assertTrue(c.login().startswith(b'+OK'))
        r = c.cmd('STLS')
        self.assertTrue(r.startswith(b'-ERR'), 'STLS only in AUTHORIZATION (RFC 2595 4): %r' % r)
        self.assertTrue(c.cmd('STAT').startswith(b'+OK'))

    def test_imap_starttls_twice_and_on_implicit(self):
        s = self.tls_server()
        c = RawIMAP(s.addr('imap'))
        self.addCleanup(c.close)
        _, tagged = c.cmd('STARTTLS')
        self.assertRegex(tagged, r'^OK\b')
        c.start_tls(self.ctx)
        _, tagged = c.cmd('STARTTLS')
        self.assertRegex(tagged, r'^BAD\b')
        c.login()
        d = RawIMAP(s.addr('imaps'), tls=self.ctx)
        self.addCleanup(d.close)
        self.assertNotIn('STARTTLS', d.greeting.decode())
        untagged, _ = d.cmd('CAPABILITY')
        self.assertNotIn('STARTTLS', caps_of(untagged[0]))
        _, tagged = d.cmd('STARTTLS')
        self.assertRegex(tagged, r'^BAD\b')
        d.login()
        d.ok('SELECT INBOX')

    def test_imap_starttls_after_login_refused(self):
        s = self.tls_server()
        c = RawIMAP(s.addr('imap'))
        self.addCleanup(c.close)
        c.login()
        _, tagged = c.cmd('STARTTLS')
        self.assertRegex(tagged, r'^BAD\b', 'STARTTLS only in the not-authenticated state')
        c.ok('NOOP')


class WeakClients(TLSTestCase):
    """Clients that can only speak what the default priority forbids."""

    def gnutls_cli(self, s, listener, priority):
        if not shutil.which('gnutls-cli'):
            self.skipTest('gnutls-cli is not installed (gnutls-bin)')
        host, port = s.addr(listener)
        return subprocess.run(['gnutls-cli', '--x509cafile', self.ca.ca_cert, '--priority', priority,
                               '-p', str(port), host], input=b'', capture_output=True,
                              timeout=scaled(20), env=subprocess_env())

    def assertRefusedAndLogged(self, s, mark, p):
        self.assertNotEqual(p.returncode, 0, p.stdout.decode('latin-1') + p.stderr.decode('latin-1'))
        self.assertNotIn(b'Handshake was completed', p.stdout)
        line = self.wait_log(s, r'(?i)handshake.*(fail|error|refus)', start=mark)
        # with GnuTLS's reason
        self.assertRegex(line, r'(?i)reason=\S.*(version|protocol|cipher|suite|algorithm|supported|alert)', line)
        self.assertFalse(s.proc.poll() is not None, 'the server must keep running')
        self.assertGood(s)

    def assertGood(self, s):
        """A careful client still gets through, on the implicit IMAP port."""
        c = RawIMAP(s.addr('imaps'), tls=self.ctx)
        self.addCleanup(c.close)
        c.login()
        self.assertIn(c.sock.version(), ('TLSv1.2', 'TLSv1.3'))

    def test_gnutls_cli_tls11_only_refused(self):
        s = self.tls_server()
        mark = self.log_mark(s)
        p = self.gnutls_cli(s, 'imaps', 'NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0')
        self.assertRefusedAndLogged(s, mark, p)

    def test_gnutls_cli_cbc_sha1_only_refused(self):
        s = self.tls_server()
        mark = self.log_mark(s)
        p = self.gnutls_cli(s, 'imaps', 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC'
                            ':-MAC-ALL:+SHA1')
        self.assertRefusedAndLogged(s, mark, p)

    def test_gnutls_cli_rsa_kx_only_refused(self):
        # RSA key exchange (no forward secrecy); the server key is ECDSA, so
        # this can never agree, whatever the priority: it must fail cleanly
        s = self.tls_server()
        mark = self.log_mark(s)
        p = self.gnutls_cli(s, 'imaps', 'NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA')
        self.assertRefusedAndLogged(s, mark, p)

    def test_python_tls11_refused(self):
        s = self.tls_server()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca.ca_cert)
        try:
            ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError) as e:
            self.skipTest('the local OpenSSL cannot offer TLS 1.1: %s' % e)
        mark = self.log_mark(s)
        for listener in ('imaps', 'smtps', 'pops'):
            sock = socket.create_connection(s.addr(listener), timeout=scaled(10))
            with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                ctx.wrap_socket(sock, server_hostname='127.0.0.1').close()
            sock.close()
        self.wait_log(s, r'(?i)handshake.*(fail|error)', start=mark)
        self.assertGood(s)

    def test_python_cbc_sha1_refused_on_starttls(self):
        s = self.tls_server()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca.ca_cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers('ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA')
        mark = self.log_mark(s)
        c = RawSMTP(s.addr('mx'))
        self.addCleanup(c.close)
        c.ehlo()
        self.assertReply(c.cmd('STARTTLS'), 220)
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            c.start_tls(ctx)
        self.wait_log(s, r'(?i)handshake.*(fail|error)', start=mark)
        # the server stays up; a good STARTTLS client goes through
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(20)) as d:
            d.starttls(context=self.ctx)
            self.assertEqual(d.sendmail(SENDER, [ALICE], make_message('after a weak one')), {})


class Check(TLSTestCase):
    """`buzon check` validates certificate/key pairs and says what fails."""

    def check(self, cert, key, hostname=HOSTNAME):
        s = self.new_server(start=False, users=False, server={'hostname': hostname},
                            tls={'certificate': cert, 'key': key}, listeners=TLS_LISTENERS)
        p = s.cli('check')
        return p, p.stdout + p.stderr

    def test_good_pair(self):
        p, out = self.check(self.ca.cert, self.ca.key)
        self.assertEqual(p.returncode, 0, out)

    def test_mismatched_key(self):
        _, other_key = self.ca.issue('other')
        p, out = self.check(self.ca.cert, other_key)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertRegex(out, r'(?i)key', out)
        self.assertRegex(out, r'(?i)match', out)

    def test_expired(self):
        cert, key = self.ca.issue('expired', activation='2020-01-01 00:00:00', expiration='2021-01-01 00:00:00')
        p, out = self.check(cert, key)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertRegex(out, r'(?i)expire', out)

    def test_not_yet_valid(self):
        cert, key = self.ca.issue('future', activation='2090-01-01 00:00:00', expiration='2091-01-01 00:00:00')
        p, out = self.check(cert, key)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertRegex(out, r'(?i)not (yet )?valid|activation|future', out)

    def test_wrong_hostname(self):
        # a warning is enough (clients may reach the server by another name
        # than [server] hostname): check must say it
        cert, key = self.ca.issue('elsewhere', cn='mail.elsewhere.test', dns=('mail.elsewhere.test',), ips=())
        p, out = self.check(cert, key)
        self.assertIn(HOSTNAME, out, 'check must name the hostname that does not match')
        self.assertIn('mail.elsewhere.test', out, 'check must say what the certificate names')

    def test_missing_file(self):
        p, out = self.check(os.path.join(self.ca.dir, 'nonexistent.pem'), self.ca.key)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn('nonexistent.pem', out)


class Certificates(TLSTestCase):
    """Several certificates: chosen by SNI ([certificate "NAME"]), or a
    listener's own pair; a TLS listener without any certificate is a
    configuration error."""

    def fingerprint(self, s, listener, sni):
        sock = socket.create_connection(s.addr(listener), timeout=scaled(10))
        ctx = self.ca.client_context()
        if sni is None:
            ctx.check_hostname = False      # no SNI sent; the chain is still verified
        with ctx.wrap_socket(sock, server_hostname=sni) as t:
            return peer_fingerprint(t)

    def test_sni_chooses_certificate(self):
        other_cert, other_key = self.ca.issue('other-sni', cn='mail.other.test', dns=('mail.other.test',), ips=())
        s = self.new_server(start=False, users=False, listeners=TLS_LISTENERS, tls=self.ca.tls_section())
        with open(s.config_path, 'a') as f:
            f.write('\n[certificate "other"]\ncertificate = %s\nkey = %s\n' % (other_cert, other_key))
        p = s.cli('check')
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        s.start()
        main = pem_fingerprint(self.ca.cert)
        other = pem_fingerprint(other_cert)
        for listener in ('imaps', 'pops', 'smtps'):
            self.assertEqual(self.fingerprint(s, listener, 'mail.other.test'), other, listener)
            self.assertEqual(self.fingerprint(s, listener, HOSTNAME), main, listener)
            self.assertEqual(self.fingerprint(s, listener, None), main, 'no SNI: the [tls] certificate')
        # after STARTTLS too
        c = RawSMTP(s.addr('mx'))
        self.addCleanup(c.close)
        c.ehlo()
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.start_tls(self.ctx, server_hostname='mail.other.test')
        self.assertEqual(peer_fingerprint(c.sock), other)

    def test_listener_own_certificate(self):
        own_cert, own_key = self.ca.issue('own')
        listeners = dict(TLS_LISTENERS)
        listeners['imaps2'] = ('imap', '127.0.0.1:0', {'tls': 'implicit', 'certificate': own_cert, 'key': own_key})
        s = self.tls_server(listeners=listeners)
        self.assertEqual(self.fingerprint(s, 'imaps2', '127.0.0.1'), pem_fingerprint(own_cert))
        self.assertEqual(self.fingerprint(s, 'imaps', '127.0.0.1'), pem_fingerprint(self.ca.cert))

    def test_tls_listener_without_certificate_is_an_error(self):
        s = self.new_server(start=False, users=False,
                            listeners={'imaps': ('imap', '127.0.0.1:0', {'tls': 'implicit'})})
        p = s.cli('check')
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(s.config_path) as f:
            line = [i + 1 for i, l in enumerate(f.read().splitlines()) if l.startswith('tls = ')][0]
        self.assertRegex(p.stdout + p.stderr, r'\b%d\b' % line, 'the error names the line')

    def test_default_mode_without_certificate_is_clear_text(self):
        s = self.new_server(users=False, listeners={'mx': '127.0.0.1:0'})
        c = RawSMTP(s.addr('mx'))
        self.addCleanup(c.close)
        self.assertNotIn('STARTTLS', c.ehlo().lines)

    def test_default_mode_with_certificate_is_starttls(self):
        s = self.tls_server(listeners={'mx': '127.0.0.1:0', 'imap': ('imap', '127.0.0.1:0'),
                                       'pop': ('pop3', '127.0.0.1:0')})
        c = RawSMTP(s.addr('mx'))
        self.addCleanup(c.close)
        self.assertIn('STARTTLS', c.ehlo().lines)
        i = RawIMAP(s.addr('imap'))
        self.addCleanup(i.close)
        untagged, _ = i.cmd('CAPABILITY')
        self.assertIn('STARTTLS', caps_of(untagged[0]))
        self.assertNotIn('LOGINDISABLED', caps_of(untagged[0]))
        p = RawPOP3(s.addr('pop'))
        self.addCleanup(p.close)
        self.assertIn('STLS', p.capa())


class AutoCertificate(TLSTestCase):

    def test_auto_creates_and_pins(self):
        listeners = {'imaps': ('imap', '127.0.0.1:0', {'tls': 'implicit'}),
                     'mx': ('smtp', '127.0.0.1:0', {'tls': 'starttls'})}
        s = self.new_server(start=True, users=('alice',), listeners=listeners, tls={'certificate': 'auto'})
        tls_dir = os.path.join(s.data_dir, 'tls')
        self.assertTrue(os.path.isdir(tls_dir), 'certificate = auto makes data_dir/tls/')
        self.assertTrue(os.listdir(tls_dir), 'data_dir/tls/ holds the certificate and key')
        for name in os.listdir(tls_dir):
            if 'key' in name:
                mode = os.stat(os.path.join(tls_dir, name)).st_mode & 0o777
                self.assertEqual(mode & 0o077, 0, 'the key %s must not be readable by others (%o)' % (name, mode))
        line = self.wait_log(s, r'(?i)sha-?256')
        hexes = re.sub(r'[^0-9a-fA-F]', '', re.search(r'(?i)((?:[0-9a-f]{2}:){31}[0-9a-f]{2}|[0-9a-f]{64})',
                                                      line).group(1)).lower()
        self.assertEqual(len(hexes), 64, line)
        # a client pinning that fingerprint (no CA: the pin is the check)
        pin = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        pin.check_hostname = False
        pin.verify_mode = ssl.CERT_NONE
        c = RawIMAP(s.addr('imaps'), tls=pin)
        self.addCleanup(c.close)
        self.assertEqual(peer_fingerprint(c.sock), hexes)
        c.login()
        # the certificate names the hostname
        cert_files = [n for n in os.listdir(tls_dir) if n.endswith(('.pem', '.crt')) and 'key' not in n]
        self.assertTrue(cert_files, os.listdir(tls_dir))
        text = subprocess.run(['certtool', '-i', '--infile', os.path.join(tls_dir, cert_files[0])],
                              capture_output=True, text=True).stdout
        self.assertIn(HOSTNAME, text)
        # a restart keeps the same certificate
        s.stop()
        s.start()
        d = RawIMAP(s.addr('imaps'), tls=pin)
        self.addCleanup(d.close)
        self.assertEqual(peer_fingerprint(d.sock), hexes, 'the auto certificate is made once')


if __name__ == '__main__':
    unittest.main(verbosity=2)
