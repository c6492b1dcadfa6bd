"""TLS with real clients at their default settings (issue 9): every
protocol over STARTTLS/STLS and over implicit TLS, with Python's smtplib,
poplib and imaplib, swaks, curl, fetchmail, mutt, mbsync, getmail6 and
gnutls-cli. Every client verifies the server's certificate against the
test CA (made with certtool, see buzon_test.TestCA); each one really
delivers or fetches a message and the content is compared.

Where a client cannot match a certificate to an IP address (fetchmail and
mbsync only look at DNS names), it is told the name to expect (fetchmail's
sslcommonname) or given the server's certificate to trust (mbsync's
CertificateFile): the certificate is still verified.
"""

import imaplib
import os
import poplib
import re
import select
import shutil
import smtplib
import subprocess
import time
import unittest

from buzon_test import (ALICE, HOSTNAME, PASSWORD, TLSTestCase, make_message, scaled, split_delivered,
                        stored_form, subprocess_env)

SENDER = 'sender@client.example.org'
BODY = (b'Hello over TLS.\r\n'
        b'.a line with a leading dot\r\n'
        b'\r\n'
        b'caf\xc3\xa9 \xe2\x82\xac\r\n'
        b'-- \r\n'
        b'signature\r\n')
TLS_COMMENT_RE = r'\(version=TLS1\.[23] cipher=[A-Za-z0-9_-]+'


def run(argv, env=None, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, timeout=scaled(timeout), env=env or subprocess_env(), **kw)


def output(p):
    return (p.stdout.decode('latin-1')[-4000:] + '\n' + p.stderr.decode('latin-1')[-4000:])


class TLSClients(TLSTestCase):

    def need(self, binary, package=None):
        if not shutil.which(binary):
            self.skipTest('%s is not installed (Debian package: %s)' % (binary, package or binary))

    def home(self, s, name):
        path = os.path.join(s.tmp, name)
        os.makedirs(path, exist_ok=True)
        return path

    # -- SMTP side -----------------------------------------------------------------

    def assertDeliveredTLS(self, s, sent, rcpt=ALICE, mail_from=SENDER):
        """One message in rcpt's new/, as sent, with a Received line that
        says ESMTPS and the TLS version and cipher."""
        got = s.messages(rcpt)
        self.assertEqual(len(got), 1, 'one message must be delivered')
        self.assertDelivered(s, got[0], sent, mail_from, rcpt, proto='ESMTPS')
        rec = dict(split_delivered(got[0])[0])['received']
        self.assertRegex(rec, TLS_COMMENT_RE, 'Received must record the TLS version and cipher: ' + rec)
        return rec

    def test_smtplib_starttls(self):
        s = self.tls_server()
        msg = make_message('smtplib starttls', BODY)
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(30)) as c:
            code, _ = c.ehlo('client.example.org')
            self.assertEqual(code, 250)
            self.assertTrue(c.has_extn('starttls'), c.esmtp_features)
            code, text = c.starttls(context=self.ctx)
            self.assertEqual(code, 220, text)
            self.assertEqual(c.sock.getpeercert()['subject'], ((('commonName', HOSTNAME),),))
            # RFC 3207 4.2: the EHLO after TLS no longer offers STARTTLS
            code, _ = c.ehlo('client.example.org')
            self.assertEqual(code, 250)
            self.assertFalse(c.has_extn('starttls'), c.esmtp_features)
            self.assertEqual(c.sendmail(SENDER, [ALICE], msg), {})
        rec = self.assertDeliveredTLS(s, msg)
        self.assertRegex(rec, r'\(version=TLS1\.3 cipher=', 'Python offers TLS 1.3: ' + rec)

    def test_smtplib_implicit(self):
        s = self.tls_server()
        msg = make_message('smtplib implicit', BODY)
        host, port = s.addr('smtps')
        with smtplib.SMTP_SSL(host, port, context=self.ctx, timeout=scaled(30)) as c:
            code, _ = c.ehlo('client.example.org')
            self.assertEqual(code, 250)
            self.assertFalse(c.has_extn('starttls'), 'no STARTTLS inside TLS: %r' % c.esmtp_features)
            self.assertEqual(c.sendmail(SENDER, [ALICE], msg), {})
        self.assertDeliveredTLS(s, msg)

    def swaks(self, s, msg, listener, *extra):
        self.need('swaks')
        path = os.path.join(s.tmp, 'msg.eml')
        with open(path, 'wb') as f:
            f.write(msg[:-2].replace(b'\r\n', b'\n'))
        host, port = s.addr(listener)
        return run(['swaks', '--server', host, '--port', str(port), '--from', SENDER, '--to', ALICE,
                    '--helo', 'client.example.org', '--data', '@' + path, '--timeout', '20',
                    '--tls-verify', '--tls-ca-path', self.ca.ca_cert] + list(extra))

    def test_swaks_starttls(self):
        s = self.tls_server()
        msg = make_message('swaks tls', BODY)
        p = self.swaks(s, msg, 'mx', '--tls')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertIn(b'=== TLS started with cipher', p.stdout, output(p))
        self.assertDeliveredTLS(s, msg)

    def test_swaks_tls_on_connect(self):
        s = self.tls_server()
        msg = make_message('swaks tlsc', BODY)
        p = self.swaks(s, msg, 'smtps', '--tlsc')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertIn(b'=== TLS started with cipher', p.stdout, output(p))
        self.assertDeliveredTLS(s, msg)

    def curl_smtp(self, s, msg, url, *extra):
        self.need('curl')
        path = os.path.join(s.tmp, 'curl.eml')
        with open(path, 'wb') as f:
            f.write(msg)
        return run(['curl', '--silent', '--show-error', '--max-time', '20', '--cacert', self.ca.ca_cert,
                    url, '--mail-from', SENDER, '--mail-rcpt', ALICE, '--upload-file', path] + list(extra))

    def test_curl_smtp_ssl_reqd(self):
        s = self.tls_server()
        msg = make_message('curl smtp', BODY)
        p = self.curl_smtp(s, msg, 'smtp://%s:%d/client.example.org' % s.addr('mx'), '--ssl-reqd')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertDeliveredTLS(s, msg)

    def test_curl_smtps(self):
        s = self.tls_server()
        msg = make_message('curl smtps', BODY)
        p = self.curl_smtp(s, msg, 'smtps://%s:%d/client.example.org' % s.addr('smtps'))
        self.assertEqual(p.returncode, 0, output(p))
        self.assertDeliveredTLS(s, msg)

    def mutt_rc(self, home, extra=''):
        rc = os.path.join(home, 'muttrc')
        with open(rc, 'w') as f:
            f.write('set ssl_force_tls = yes\n'
                    'set ssl_ca_certificates_file = "%s"\n'
                    'set certificate_file = "%s/certificates"\n'
                    'set from = "%s"\nset use_from = yes\nset hostname = client.example.org\n'
                    'set record = ""\nset shell = "/bin/sh"\nset folder = "%s"\n'
                    % (self.ca.ca_cert, home, SENDER, home) + extra)
        return rc

    def mutt_send(self, s, url, subject):
        self.need('mutt')
        home = self.home(s, 'mutt-send')
        rc = self.mutt_rc(home, 'set smtp_url = "%s"\n' % url)
        env = subprocess_env()
        env['HOME'] = home
        body = b'Hello from mutt over TLS.\n.a line with a leading dot\n'
        p = run(['mutt', '-n', '-F', rc, '-s', subject, ALICE], input=body, env=env)
        self.assertEqual(p.returncode, 0, output(p))
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        headers, rest = split_delivered(got[0])
        rec = dict(headers)['received']
        self.assertRegex(rec, r'\bwith ESMTPS\b', rec)
        self.assertRegex(rec, TLS_COMMENT_RE, rec)
        self.assertIn(b'\nSubject: ' + subject.encode() + b'\n', b'\n' + rest)
        self.assertTrue(rest.endswith(b'\n\n' + body), rest)

    def test_mutt_batch_send_starttls(self):
        s = self.tls_server()
        self.mutt_send(s, 'smtp://%s:%d/' % s.addr('mx'), 'mutt starttls')

    def test_mutt_batch_send_smtps(self):
        s = self.tls_server()
        self.mutt_send(s, 'smtps://%s:%d/' % s.addr('smtps'), 'mutt smtps')

    def test_gnutls_cli_smtp(self):
        self.need('gnutls-cli', 'gnutls-bin')
        s = self.tls_server()
        msg = make_message('gnutls-cli smtp', BODY)
        g = GnutlsCli(self, s.addr('mx'), 'smtp', self.ca.ca_cert)
        g.send(b'EHLO client.example.org')
        g.expect(rb'250 [^\r\n]*\r\n')
        self.assertNotIn(b'STARTTLS', g.last, 'the EHLO after TLS offers no STARTTLS')
        for line, reply in ((b'MAIL FROM:<%s>' % SENDER.encode(), b'250'), (b'RCPT TO:<%s>' % ALICE.encode(), b'250'),
                            (b'DATA', b'354')):
            g.send(line)
            g.expect(reply + rb' [^\r\n]*\r\n')
        for l in msg[:-2].split(b'\r\n'):
            g.send(b'.' + l if l.startswith(b'.') else l)
        g.send(b'.')
        g.expect(rb'250 2\.0\.0[^\r\n]*\r\n')
        g.send(b'QUIT')
        g.expect(rb'221 [^\r\n]*\r\n')
        g.finish()
        self.assertDeliveredTLS(s, msg)

    # -- POP3 and IMAP side: a message sent over STARTTLS, fetched -----------------

    def deliver_one(self, s, subject):
        """Delivers a message over implicit TLS (smtps)."""
        msg = make_message(subject, BODY)
        host, port = s.addr('smtps')
        with smtplib.SMTP_SSL(host, port, context=self.ctx, timeout=scaled(30)) as c:
            self.assertEqual(c.sendmail(SENDER, [ALICE], msg), {})
        return msg

    def assertFetched(self, data, sent, lf=False):
        """data: what a client got (the delivered file with buzon's trace
        headers, perhaps another client's Received first)."""
        headers, rest = split_delivered(data)
        self.assertEqual(sorted(set(h[0] for h in headers)), ['delivered-to', 'received', 'return-path'],
                         headers)
        self.assertEqual(rest, stored_form(sent) if lf else sent)

    def test_poplib_stls(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'poplib stls')
        host, port = s.addr('pop')
        c = poplib.POP3(host, port, timeout=scaled(30))
        try:
            self.assertIn('STLS', c.capa())
            c.stls(context=self.ctx)
            self.assertNotIn('STLS', c.capa(), 'CAPA after STLS offers no STLS')
            c.user(ALICE)
            c.pass_(PASSWORD)
            _, lines, _ = c.retr(1)
            self.assertFetched(b'\r\n'.join(lines) + b'\r\n', sent)
        finally:
            c.quit()

    def test_poplib_implicit(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'poplib ssl')
        host, port = s.addr('pops')
        c = poplib.POP3_SSL(host, port, context=self.ctx, timeout=scaled(30))
        try:
            self.assertNotIn('STLS', c.capa(), 'no STLS inside TLS')
            c.user(ALICE)
            c.pass_(PASSWORD)
            _, lines, _ = c.retr(1)
            self.assertFetched(b'\r\n'.join(lines) + b'\r\n', sent)
        finally:
            c.quit()

    def imaplib_fetch(self, c, sent):
        typ, _ = c.login(ALICE, PASSWORD)
        self.assertEqual(typ, 'OK')
        typ, _ = c.select('INBOX')
        self.assertEqual(typ, 'OK')
        typ, data = c.fetch('1', '(BODY.PEEK[])')
        self.assertEqual(typ, 'OK', data)
        self.assertFetched(data[0][1], sent)
        c.logout()

    def test_imaplib_starttls(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'imaplib starttls')
        host, port = s.addr('imap')
        c = imaplib.IMAP4(host, port, timeout=scaled(30))
        self.assertIn('STARTTLS', c.capabilities)
        typ, _ = c.starttls(ssl_context=self.ctx)
        self.assertEqual(typ, 'OK')
        # imaplib asks CAPABILITY again after TLS (RFC 3501 6.2.1)
        self.assertNotIn('STARTTLS', c.capabilities)
        self.imaplib_fetch(c, sent)

    def test_imaplib_implicit(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'imaplib ssl')
        host, port = s.addr('imaps')
        c = imaplib.IMAP4_SSL(host, port, ssl_context=self.ctx, timeout=scaled(30))
        self.assertNotIn('STARTTLS', c.capabilities)
        self.imaplib_fetch(c, sent)

    def curl_fetch(self, s, url, *extra):
        self.need('curl')
        p = run(['curl', '--silent', '--show-error', '--max-time', '20', '--cacert', self.ca.ca_cert,
                 '--user', '%s:%s' % (ALICE, PASSWORD), url] + list(extra))
        self.assertEqual(p.returncode, 0, output(p))
        return p.stdout

    def test_curl_pop3_ssl_reqd(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'curl pop3')
        self.assertFetched(self.curl_fetch(s, 'pop3://%s:%d/1' % s.addr('pop'), '--ssl-reqd'), sent)

    def test_curl_pop3s(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'curl pop3s')
        self.assertFetched(self.curl_fetch(s, 'pop3s://%s:%d/1' % s.addr('pops')), sent)

    def test_curl_imap_ssl_reqd(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'curl imap')
        self.assertFetched(self.curl_fetch(s, 'imap://%s:%d/INBOX;UID=1' % s.addr('imap'), '--ssl-reqd'), sent)

    def test_curl_imaps(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'curl imaps')
        self.assertFetched(self.curl_fetch(s, 'imaps://%s:%d/INBOX;UID=1' % s.addr('imaps')), sent)

    def fetchmail(self, s, listener, protocol, ssl=False):
        """fetchmail with its defaults (TLS: STLS/STARTTLS when offered,
        certificates checked) and the test CA; returns (what the MDA got, -v output)."""
        self.need('fetchmail')
        home = self.home(s, 'fetchmail-' + listener)
        out = self.home(s, 'fetchmail-out-' + listener)
        host, port = s.addr(listener)
        rc = os.path.join(home, '.fetchmailrc')
        with open(rc, 'w') as f:
            # sslcommonname: fetchmail matches DNS names only, not 127.0.0.1
            f.write('set no bouncemail\nset no syslog\n'
                    'poll %s service %d protocol %s auth password\n'
                    '  user "%s" password "%s" is "alice" here\n'
                    '  %ssslcertck sslcertfile "%s" sslcommonname "%s"\n'
                    '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n'
                    % (host, port, protocol, ALICE, PASSWORD, 'ssl ' if ssl else '', self.ca.ca_cert,
                       HOSTNAME, out))
        os.chmod(rc, 0o600)
        env = subprocess_env()
        env['HOME'] = home
        p = run(['fetchmail', '-f', rc, '-v', '--nodetach'], env=env)
        self.assertEqual(p.returncode, 0, output(p))
        got = []
        for name in os.listdir(out):
            with open(os.path.join(out, name), 'rb') as f:
                got.append(f.read())
        return got, p.stdout + p.stderr

    def check_fetchmail(self, s, listener, protocol, ssl=False):
        sent = self.deliver_one(s, 'fetchmail %s' % listener)
        got, log = self.fetchmail(s, listener, protocol, ssl)
        self.assertEqual(len(got), 1, log.decode('latin-1')[-3000:])
        # fetchmail hands the MDA LF line ends and adds its own Received
        self.assertEqual(split_delivered(got[0])[1], stored_form(sent))
        self.assertIn(b'TLSv1.3', log, 'fetchmail must report the TLS protocol it used')
        if not ssl:
            self.assertIn(b'upgrade to TLS succeeded', log, log.decode('latin-1')[-3000:])

    def test_fetchmail_pop3_default_stls(self):
        self.check_fetchmail(self.tls_server(), 'pop', 'pop3')

    def test_fetchmail_pop3_ssl(self):
        self.check_fetchmail(self.tls_server(), 'pops', 'pop3', ssl=True)

    def test_fetchmail_imap_default_starttls(self):
        self.check_fetchmail(self.tls_server(), 'imap', 'imap')

    def test_fetchmail_imap_ssl(self):
        self.check_fetchmail(self.tls_server(), 'imaps', 'imap', ssl=True)

    def mutt_read(self, s, url):
        """Opens url in mutt (on a pty: mutt reads mailboxes in its screen
        only) and pipes the first message to a file; returns its content."""
        self.need('mutt')
        home = self.home(s, 'mutt-read')
        out = os.path.join(home, 'out.eml')
        rc = self.mutt_rc(home, 'set imap_user = "%s"\nset imap_pass = "%s"\nset wait_key = no\nset quit = yes\n'
                          'set header_cache = ""\nset message_cachedir = ""\nset pipe_decode = no\n'
                          'set move = no\n' % (ALICE, PASSWORD))
        env = subprocess_env()
        env['HOME'] = home
        env['TERM'] = 'vt100'
        # typed on the index once it shows: "|" pipes the message, "q" quits
        screen, status = run_on_pty(['mutt', '-n', '-F', rc, '-f', url], env, scaled(30),
                                    [(r'---Mutt: imaps?://', b'|'), (r'Pipe to command: ', b'cat > %s\r' % out.encode()),
                                     (r'(?s)Pipe to command: .*---Mutt: ', b'q')])
        self.assertTrue(os.path.exists(out), 'mutt did not fetch (exit %r); screen: %r' % (status, screen[-1500:]))
        self.assertEqual(status, 0, screen[-1500:])
        with open(out, 'rb') as f:
            return f.read()

    def test_mutt_imap_starttls(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'mutt imap')
        # mutt pipes the message with LF line ends
        self.assertFetched(self.mutt_read(s, 'imap://%s:%d/INBOX' % s.addr('imap')), sent, lf=True)

    def test_mutt_imaps(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'mutt imaps')
        self.assertFetched(self.mutt_read(s, 'imaps://%s:%d/INBOX' % s.addr('imaps')), sent, lf=True)

    def mbsync(self, s, listener, ssltype):
        self.need('mbsync', 'isync')
        home = self.home(s, 'mbsync-' + listener)
        host, port = s.addr(listener)
        local = os.path.join(home, 'Mail')
        os.makedirs(local, exist_ok=True)
        rc = os.path.join(home, 'mbsyncrc')
        with open(rc, 'w') as f:
            # isync 1.4 matches DNS names only, not 127.0.0.1: it is given the
            # server's certificate ("directly matched peer certificates are
            # always trusted"); it still checks it is that one.
            f.write('IMAPAccount buzon\nHost %s\nPort %d\nUser %s\nPass "%s"\nSSLType %s\n'
                    'CertificateFile %s\nAuthMechs PLAIN\n\n'
                    'IMAPStore remote\nAccount buzon\n\n'
                    'MaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n'
                    'Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nExpunge Both\n'
                    'SyncState *\nSync All\n' % (host, port, ALICE, PASSWORD, ssltype, self.ca.cert, local, local))
        env = subprocess_env()
        env['HOME'] = home
        p = run(['mbsync', '-c', rc, '-V', 'sync'], env=env)
        self.assertEqual(p.returncode, 0, output(p))
        files = []
        for sub in ('new', 'cur'):
            d = os.path.join(local, 'INBOX', sub)
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), 'rb') as f:
                    files.append(f.read())
        return files

    def check_mbsync(self, listener, ssltype):
        s = self.tls_server()
        sent = self.deliver_one(s, 'mbsync %s' % ssltype)
        got = self.mbsync(s, listener, ssltype)
        self.assertEqual(len(got), 1)
        data = re.sub(rb'\nX-TUID: [^\r\n]*(\r?\n)', rb'\1', got[0], count=1)
        self.assertFetched(data, sent, lf=b'\r\n' not in data)

    def test_mbsync_starttls(self):
        self.check_mbsync('imap', 'STARTTLS')

    def test_mbsync_imaps(self):
        self.check_mbsync('imaps', 'IMAPS')

    def getmail(self, s, listener, retriever, extra=''):
        self.need('getmail', 'getmail6')
        gdir = self.home(s, 'getmail-' + listener)
        maildir = os.path.join(s.tmp, 'Maildir-' + listener)
        os.chmod(s.tmp, 0o755)
        for sub in ('', 'new', 'cur', 'tmp'):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
            os.chmod(os.path.join(maildir, sub), 0o777)   # getmail delivers as nobody when root
        host, port = s.addr(listener)
        rc = os.path.join(gdir, 'getmailrc')
        with open(rc, 'w') as f:
            f.write('[retriever]\ntype = %s\nserver = %s\nport = %d\nusername = %s\npassword = %s\n'
                    'ca_certs = %s\n%s\n'
                    '[destination]\ntype = Maildir\npath = %s/\n%s\n'
                    '[options]\nread_all = false\ndelete = false\ndelivered_to = false\nreceived = false\n'
                    'verbose = 2\n' % (retriever, host, port, ALICE, PASSWORD, self.ca.ca_cert, extra, maildir,
                                       'user = nobody\n' if os.geteuid() == 0 else ''))
        p = run(['getmail', '--getmaildir', gdir, '--rcfile', rc])
        self.assertEqual(p.returncode, 0, output(p))
        files = []
        for sub in ('new', 'cur'):
            for name in sorted(os.listdir(os.path.join(maildir, sub))):
                with open(os.path.join(maildir, sub, name), 'rb') as f:
                    files.append(f.read().replace(b'X-getmail-retrieved-from-mailbox: INBOX\n', b'', 1))
        return files

    def test_getmail_pop3_ssl(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'getmail pop3')
        got = self.getmail(s, 'pops', 'SimplePOP3SSLRetriever')
        self.assertEqual(len(got), 1)
        self.assertFetched(got[0], sent, lf=True)

    def test_getmail_imap_ssl(self):
        s = self.tls_server()
        sent = self.deliver_one(s, 'getmail imap')
        got = self.getmail(s, 'imaps', 'SimpleIMAPSSLRetriever', 'mailboxes = ("INBOX",)\n')
        self.assertEqual(len(got), 1)
        self.assertFetched(got[0], sent, lf=True)

    def test_gnutls_cli_pop3(self):
        self.need('gnutls-cli', 'gnutls-bin')
        s = self.tls_server()
        sent = self.deliver_one(s, 'gnutls-cli pop3')
        g = GnutlsCli(self, s.addr('pop'), 'pop3', self.ca.ca_cert)
        g.send(b'USER ' + ALICE.encode())
        g.expect(rb'\+OK[^\r\n]*\r\n')
        g.send(b'PASS ' + PASSWORD.encode())
        g.expect(rb'\+OK[^\r\n]*\r\n')
        g.send(b'RETR 1')
        m = g.expect(rb'\+OK[^\r\n]*\r\n(.*?)\r\n\.\r\n')
        data = b'\r\n'.join(l[1:] if l.startswith(b'.') else l for l in m.group(1).split(b'\r\n')) + b'\r\n'
        self.assertFetched(data, sent)
        g.send(b'QUIT')
        g.expect(rb'\+OK[^\r\n]*\r\n')
        g.finish()

    def test_gnutls_cli_imap(self):
        self.need('gnutls-cli', 'gnutls-bin')
        s = self.tls_server()
        sent = self.deliver_one(s, 'gnutls-cli imap')
        g = GnutlsCli(self, s.addr('imap'), 'imap', self.ca.ca_cert)
        g.send(b'a CAPABILITY')
        g.expect(rb'a OK[^\r\n]*\r\n')
        self.assertNotIn(b'STARTTLS', g.last)
        g.send(b'b LOGIN "%s" "%s"' % (ALICE.encode(), PASSWORD.encode()))
        g.expect(rb'b OK[^\r\n]*\r\n')
        g.send(b'c SELECT INBOX')
        g.expect(rb'c OK[^\r\n]*\r\n')
        g.send(b'd FETCH 1 BODY.PEEK[]')
        m = g.expect(rb'\* 1 FETCH \(BODY\[\] \{(\d+)\}\r\n')
        n = int(m.group(1))
        g.expect(rb'd OK[^\r\n]*\r\n')
        self.assertFetched(g.between(m, n), sent)
        g.send(b'e LOGOUT')
        g.expect(rb'e OK[^\r\n]*\r\n')
        g.finish()


class GnutlsCli:
    """gnutls-cli --starttls-proto=PROTO with the test CA: it does the
    protocol's STARTTLS itself, verifies the certificate, then sends what it
    reads on stdin."""

    def __init__(self, test, addr, proto, cafile):
        host, port = addr
        self.test = test
        self.p = subprocess.Popen(['gnutls-cli', '--x509cafile', cafile, '--starttls-proto', proto,
                                   '-p', str(port), host],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=subprocess_env())
        test.addCleanup(self.kill)
        self.out = b''
        self.pos = 0
        self.last = b''
        self.expect(rb'- Simple Client Mode:\n\n')
        self.test.assertIn(b'Status: The certificate is trusted', self.out)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass

    def send(self, line):
        # CRLF written here: gnutls-cli --crlf turns only the first LF of
        # what it reads at once into CRLF, and drops the rest
        self.p.stdin.write(line + b'\r\n')
        self.p.stdin.flush()

    def expect(self, regex, timeout=15):
        """Reads stdout until regex matches after what was matched before;
        self.last is the text read up to the end of the match."""
        deadline = time.monotonic() + scaled(timeout)
        fd = self.p.stdout.fileno()
        rx = re.compile(regex, re.S)
        while True:
            m = rx.search(self.out, self.pos)
            if m:
                self.last = self.out[self.pos:m.end()]
                self.base = self.pos
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                self.test.fail('gnutls-cli: no %r after %r' % (regex, self.out[-2000:]))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.p.stderr.read()
                    self.test.fail('gnutls-cli ended waiting for %r: %r %r' % (regex, self.out[-2000:], err[-1000:]))
                self.out += chunk

    def between(self, m, n):
        """The n octets after match m (a literal)."""
        return self.out[m.end():m.end() + n]

    def finish(self):
        """Closes stdin after the server said goodbye; the server must have
        ended TLS properly (close_notify)."""
        try:
            _, err = self.p.communicate(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            self.kill()
            self.test.fail('gnutls-cli did not end')
        self.test.assertNotIn(b'non-properly terminated', err,
                              'the server must send close_notify before closing: %r' % err[-500:])


def run_on_pty(argv, env, timeout, script=()):
    """Runs argv on a pseudo-terminal; returns (screen output, exit status
    or None when killed at timeout). script: (regex, keys) in order: the
    keys are typed when the screen output so far matches regex."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b''
    status = None
    step = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b''
                if chunk:
                    out += chunk
                    if step < len(script) and re.search(script[step][0], out.decode('latin-1')):
                        os.write(fd, script[step][1])
                        step += 1
                    continue
            p, st = os.waitpid(pid, os.WNOHANG)
            if p:
                status = os.waitstatus_to_exitcode(st)
                break
    finally:
        if status is None:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
        os.close(fd)
    return out.decode('latin-1'), status


if __name__ == '__main__':
    unittest.main(verbosity=2)
