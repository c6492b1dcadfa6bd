"""SMTP AUTH and message submission (issue 10; RFC 4954, RFC 6409, RFC 8314,
RFC 5802/7677 SCRAM with channel binding) with real clients: Python's
smtplib, swaks, curl and GNU SASL's gsasl, plus a hand-made SCRAM client
(hashlib/hmac) where a client must send what no real one would (a wrong
channel binding). Every TLS client verifies the server's certificate
against the test CA (buzon_test.TestCA).

Listeners of every test server (SUBMIT_LISTENERS): "mx" (protocol smtp,
STARTTLS offered, auth none by default), "sub" (submission over STARTTLS,
allow_plaintext_auth at its default, loopback), "subs" (submission over
implicit TLS) and "subnp" (submission over STARTTLS with
allow_plaintext_auth = no).
"""

import base64
import email.utils
import hashlib
import hmac
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import time
import unittest

from buzon_test import (ALICE, DOMAIN, HOSTNAME, PASSWORD, RawSMTP, TLSTestCase, make_message, scaled,
                        split_delivered, stored_form, subprocess_env)

BOB = 'bob@' + DOMAIN
ALIAS = 'alias-of-alice@' + DOMAIN
REMOTE = 'someone@remote.example.org'
BODY = (b'Submitted with AUTH.\r\n'
        b'.a line with a leading dot\r\n'
        b'\r\n'
        b'caf\xc3\xa9\r\n')

SUBMIT_LISTENERS = {
    'mx': ('smtp', '127.0.0.1:0', {'tls': 'starttls'}),
    'sub': ('submission', '127.0.0.1:0', {'tls': 'starttls'}),
    'subs': ('submission', '127.0.0.1:0', {'tls': 'implicit'}),
    'subnp': ('submission', '127.0.0.1:0', {'tls': 'starttls', 'allow_plaintext_auth': 'no'}),
}


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def plain_ir(user, password, authzid=''):
    return b64('%s\0%s\0%s' % (authzid, user, password))


def run(argv, env=None, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, timeout=scaled(timeout), env=env or subprocess_env(), **kw)


def output(p):
    return (p.stdout.decode('latin-1')[-4000:] + '\n' + p.stderr.decode('latin-1')[-4000:])


def auth_mechs(ehlo_reply):
    """The mechanisms of the AUTH line of an EHLO reply, or None without one."""
    for l in ehlo_reply.lines:
        words = l.split()
        if words and words[0].upper() == 'AUTH':
            return [w.upper() for w in words[1:]]
    return None


def header_section(rest):
    """The header lines (unfolded names only) of a stored message (LF ends)."""
    head = rest.split(b'\n\n', 1)[0]
    return [l for l in head.split(b'\n') if l and l[:1] not in (b' ', b'\t')]


class Scram:
    """A hand-made SCRAM client (RFC 5802, RFC 7677) over an authenticated
    RawSMTP, so that a test chooses every field: the GS2 channel-binding
    flag, the binding type and the binding data."""

    def __init__(self, hashname, user, password, gs2='n,,', cbdata=b''):
        self.h = hashname           # 'sha256' or 'sha1'
        self.user = user
        self.password = password
        self.gs2 = gs2
        self.cbdata = cbdata
        self.cnonce = b64(os.urandom(18))
        self.server_signature = None

    def first(self):
        name = self.user.replace('=', '=3D').replace(',', '=2C')
        self.bare = 'n=%s,r=%s' % (name, self.cnonce)
        return (self.gs2 + self.bare).encode()

    def final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
        nonce, salt, it = attrs['r'], base64.b64decode(attrs['s']), int(attrs['i'])
        if not nonce.startswith(self.cnonce) or len(nonce) == len(self.cnonce):
            raise AssertionError('server nonce does not extend ours: %r' % server_first)
        self.salt, self.iterations = attrs['s'], it
        salted = hashlib.pbkdf2_hmac(self.h, self.password.encode(), salt, it)
        client_key = hmac.new(salted, b'Client Key', self.h).digest()
        stored_key = hashlib.new(self.h, client_key).digest()
        without_proof = 'c=%s,r=%s' % (b64(self.gs2.encode() + self.cbdata), nonce)
        auth_message = ('%s,%s,%s' % (self.bare, server_first, without_proof)).encode()
        signature = hmac.new(stored_key, auth_message, self.h).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b'Server Key', self.h).digest()
        self.server_signature = hmac.new(server_key, auth_message, self.h).digest()
        return ('%s,p=%s' % (without_proof, b64(proof))).encode()

    def run(self, c, mech):
        """Runs AUTH mech on RawSMTP c; returns the last reply (235, 535, ...).
        A 334 "v=" challenge must carry the right server signature."""
        r = c.cmd('AUTH %s %s' % (mech, b64(self.first())))
        if r.code != 334:
            return r
        r = c.cmd(b64(self.final(base64.b64decode(r.lines[0]))))
        if r.code != 334:
            return r
        v = base64.b64decode(r.lines[0]).decode()
        if v != 'v=' + b64(self.server_signature):
            raise AssertionError('wrong server signature %r (want v=%s)' % (v, b64(self.server_signature)))
        return c.cmd('')


class SMTPAuth(TLSTestCase):

    def need(self, binary, package=None):
        if not shutil.which(binary):
            self.skipTest('%s is not installed (Debian package: %s)' % (binary, package or binary))

    def server(self, users=('alice', 'bob'), **kw):
        return self.tls_server(listeners=SUBMIT_LISTENERS, users=users, **kw)

    def starttls(self, s, listener='sub', ctx=None):
        """A RawSMTP on listener after EHLO, STARTTLS (verified) and EHLO again;
        returns (client, the EHLO reply in TLS)."""
        c = s.connect(listener)
        self.addCleanup(c.close)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.start_tls(ctx or self.ctx)
        r = c.ehlo()
        self.assertReply(r, 250)
        return c, r

    def implicit(self, s, listener='subs'):
        c = RawSMTP(s.addr(listener), tls=self.ctx)
        self.addCleanup(c.close)
        self.assertReply(c.greeting, 220)
        r = c.ehlo()
        self.assertReply(r, 250)
        return c, r

    def logged_in(self, s, listener='sub', user=ALICE, password=PASSWORD):
        c, _ = self.starttls(s, listener)
        self.assertReply(c.cmd('AUTH PLAIN ' + plain_ir(user, password)), 235, '2.7.0')
        return c

    def assertSubmitted(self, s, sent, mail_from=ALICE, rcpt=ALICE, user=ALICE):
        """One message in rcpt's new/, as sent, with a Received line that says
        ESMTPSA and names the authenticated user; returns the Received value."""
        got = s.messages(rcpt)
        self.assertEqual(len(got), 1, 'one message must be delivered')
        self.assertDelivered(s, got[0], sent, mail_from, rcpt, proto='ESMTPSA')
        rec = dict(split_delivered(got[0])[0])['received']
        self.assertIn('(authenticated as %s)' % user, rec, 'Received must name the user: ' + rec)
        return rec

    def assertNoSecretLogged(self, s, *secrets):
        log = s.log()
        for secret in (PASSWORD,) + secrets:
            self.assertNotIn(secret, log, 'a secret is in the log')
            self.assertNotIn(b64(secret), log, 'a secret (base64) is in the log')

    # -- what is offered where -------------------------------------------------

    def test_port25_offers_no_auth(self):
        s = self.server()
        c = s.connect('mx')
        self.addCleanup(c.close)
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertIsNone(auth_mechs(r), 'port 25 (auth none) must not offer AUTH: %r' % r)
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.start_tls(self.ctx)
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertIsNone(auth_mechs(r), 'port 25 (auth none) must not offer AUTH under TLS either: %r' % r)
        r = c.cmd('AUTH PLAIN ' + plain_ir(ALICE, PASSWORD))
        self.assertNotIn(r.code, (235, 334), 'AUTH must not be accepted where it is not offered: %r' % r)
        self.assertEqual(r.code // 100, 5, r)
        # mail from outside still needs no AUTH on port 25
        self.assertReply(c.cmd('MAIL FROM:<%s>' % REMOTE), 250)

    def test_submission_ehlo_mechanisms(self):
        s = self.server()
        c = s.connect('sub')
        self.addCleanup(c.close)
        r = c.ehlo()
        self.assertReply(r, 250)
        mechs = auth_mechs(r)
        self.assertIsNotNone(mechs, 'submission must offer AUTH: %r' % r)
        self.assertTrue({'SCRAM-SHA-256', 'SCRAM-SHA-1'} <= set(mechs), mechs)
        self.assertFalse([m for m in mechs if m.endswith('-PLUS')], '-PLUS only under TLS: %r' % mechs)
        # allow_plaintext_auth = loopback (the default) and we come from 127.0.0.1
        self.assertTrue({'PLAIN', 'LOGIN'} <= set(mechs), 'loopback: PLAIN and LOGIN in clear: %r' % mechs)
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.start_tls(self.ctx)
        r = c.ehlo()
        mechs = auth_mechs(r)
        self.assertIsNotNone(mechs, r)
        self.assertTrue({'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN',
                         'LOGIN'} <= set(mechs), mechs)

    def test_plaintext_auth_no_in_clear(self):
        s = self.server()
        c = s.connect('subnp')
        self.addCleanup(c.close)
        r = c.ehlo()
        self.assertReply(r, 250)
        mechs = auth_mechs(r) or []
        self.assertNotIn('PLAIN', mechs, 'allow_plaintext_auth = no: no PLAIN in clear: %r' % r)
        self.assertNotIn('LOGIN', mechs, 'allow_plaintext_auth = no: no LOGIN in clear: %r' % r)
        self.assertReply(c.cmd('AUTH PLAIN ' + plain_ir(ALICE, PASSWORD)), 538, '5.7.11')
        self.assertReply(c.cmd('AUTH LOGIN'), 538, '5.7.11')
        self.assertReply(c.cmd('MAIL FROM:<%s>' % ALICE), 530, '5.7.0')
        # under TLS they are offered and work
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.start_tls(self.ctx)
        r = c.ehlo()
        self.assertTrue({'PLAIN', 'LOGIN'} <= set(auth_mechs(r) or []), r)
        self.assertReply(c.cmd('AUTH PLAIN ' + plain_ir(ALICE, PASSWORD)), 235, '2.7.0')
        self.assertNoSecretLogged(s)

    # -- Python smtplib ------------------------------------------------------------

    def smtplib_send(self, s, subject, login):
        msg = make_message(subject, BODY)
        host, port = s.addr('sub')
        with smtplib.SMTP(host, port, timeout=scaled(30)) as c:
            c.ehlo('client.example.org')
            code, text = c.starttls(context=self.ctx)
            self.assertEqual(code, 220, text)
            c.ehlo('client.example.org')
            self.assertTrue(c.has_extn('auth'), c.esmtp_features)
            code, text = login(c)
            self.assertEqual(code, 235, text)
            self.assertEqual(c.sendmail(ALICE, [ALICE], msg), {})
        self.assertSubmitted(s, msg)
        self.assertNoSecretLogged(s)

    def test_smtplib_starttls_login(self):
        # smtplib's login() picks PLAIN from the list (no CRAM-MD5 offered)
        s = self.server()
        self.smtplib_send(s, 'smtplib login', lambda c: c.login(ALICE, PASSWORD))
        self.wait_log(s, r'auth ok mech=PLAIN user=%s' % re.escape(ALICE))

    def test_smtplib_starttls_auth_login(self):
        s = self.server()
        self.smtplib_send(s, 'smtplib LOGIN',
                          lambda c: (setattr(c, 'user', ALICE), setattr(c, 'password', PASSWORD),
                                     c.auth('LOGIN', c.auth_login))[2])
        self.wait_log(s, r'auth ok mech=LOGIN user=%s' % re.escape(ALICE))

    def test_smtplib_plain_without_initial_response(self):
        s = self.server()
        self.smtplib_send(s, 'smtplib PLAIN no ir',
                          lambda c: (setattr(c, 'user', ALICE), setattr(c, 'password', PASSWORD),
                                     c.auth('PLAIN', c.auth_plain, initial_response_ok=False))[2])

    def test_smtplib_ssl_implicit_submission(self):
        s = self.server()
        msg = make_message('smtplib implicit submission', BODY)
        host, port = s.addr('subs')
        with smtplib.SMTP_SSL(host, port, context=self.ctx, timeout=scaled(30)) as c:
            c.ehlo('client.example.org')
            self.assertFalse(c.has_extn('starttls'), c.esmtp_features)
            self.assertIn('SCRAM-SHA-256-PLUS', c.esmtp_features.get('auth', '').upper().split())
            c.login(ALICE, PASSWORD)
            self.assertEqual(c.sendmail(ALICE, [ALICE, BOB], msg), {})
        self.assertSubmitted(s, msg)
        self.assertEqual(len(s.messages(BOB)), 1)

    # -- submission rules ----------------------------------------------------------

    def test_mail_before_auth(self):
        s = self.server()
        c, _ = self.starttls(s)
        self.assertReply(c.cmd('MAIL FROM:<%s>' % ALICE), 530, '5.7.0')
        self.assertReply(c.cmd('RCPT TO:<%s>' % ALICE), 503)
        c2, _ = self.implicit(s)
        self.assertReply(c2.cmd('MAIL FROM:<%s>' % ALICE), 530, '5.7.0')
        self.assertNoMail(s)

    def test_forged_and_null_sender(self):
        s = self.server()
        c = self.logged_in(s)
        self.assertReply(c.cmd('MAIL FROM:<%s>' % BOB), 553, '5.7.1')
        self.assertReply(c.cmd('MAIL FROM:<%s>' % REMOTE), 553, '5.7.1')
        self.assertReply(c.cmd('MAIL FROM:<>'), 553, '5.7.1')
        # the user's own address still works in the same session
        self.assertReply(c.cmd('MAIL FROM:<%s>' % ALICE), 250)
        self.assertReply(c.cmd('RSET'), 250)
        # the case of the domain does not make the address foreign (RFC 5321 2.4)
        self.assertReply(c.cmd('MAIL FROM:<alice@%s>' % DOMAIN.upper()), 250)
        self.assertNoMail(s)

    def test_alias_sender_allowed(self):
        s = self.server(start=False)
        s.add_alias(ALIAS, ALICE)
        s.start()
        c = self.logged_in(s)
        msg = make_message('from my alias', BODY)
        r = c.send_message(ALIAS, [BOB], msg.replace(b'\r\n.', b'\r\n..'), ehlo=False)
        self.assertReply(r, 250)
        got = s.messages(BOB)
        self.assertEqual(len(got), 1)
        self.assertEqual(dict(split_delivered(got[0])[0])['return-path'], '<%s>' % ALIAS)

    def test_remote_recipient(self):
        s = self.server()
        c = self.logged_in(s)
        self.assertReply(c.cmd('MAIL FROM:<%s>' % ALICE), 250)
        r = c.cmd('RCPT TO:<%s>' % REMOTE)
        self.assertReply(r, 550, '5.7.1')
        self.assertReply(c.cmd('RCPT TO:<%s>' % BOB), 250)

    def send_raw(self, c, msg, rcpt=BOB):
        self.assertReply(c.cmd('MAIL FROM:<%s>' % ALICE), 250)
        self.assertReply(c.cmd('RCPT TO:<%s>' % rcpt), 250)
        self.assertReply(c.cmd('DATA'), 354)
        c.send(msg.replace(b'\r\n.', b'\r\n..') + b'.\r\n')
        self.assertReply(c.reply(), 250)

    def test_date_and_message_id_added(self):
        s = self.server()
        c = self.logged_in(s)
        msg = (b'From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: no date, no id\r\n'
               b'\r\n' + BODY)
        before = time.time()
        self.send_raw(c, msg)
        got = s.messages(BOB)
        self.assertEqual(len(got), 1)
        rest = split_delivered(got[0])[1]
        heads = header_section(rest)
        dates = [l for l in heads if l.lower().startswith(b'date:')]
        ids = [l for l in heads if l.lower().startswith(b'message-id:')]
        self.assertEqual(len(dates), 1, 'one Date must be added: %r' % rest[:500])
        self.assertEqual(len(ids), 1, 'one Message-ID must be added: %r' % rest[:500])
        when = email.utils.parsedate_to_datetime(dates[0].split(b':', 1)[1].strip().decode()).timestamp()
        self.assertLess(abs(when - before), 120, dates[0])
        self.assertRegex(ids[0].decode(), r'^Message-ID: <[^<>@\s]+@%s>$' % re.escape(HOSTNAME))
        # nothing else changed: the message as sent, with the two fields
        stripped = rest.replace(dates[0] + b'\n', b'', 1).replace(ids[0] + b'\n', b'', 1)
        self.assertEqual(stripped, stored_form(msg))

        # a second message: Message-ID present, Date missing -> only Date added
        msg2 = (b'From: Alice <alice@example.test>\r\nSubject: id only\r\n'
                b'Message-ID: <given.1@client.example.org>\r\n\r\nbody\r\n')
        self.send_raw(c, msg2)
        got = s.messages(BOB)
        self.assertEqual(len(got), 2)
        rest2 = [split_delivered(g)[1] for g in got if b'id only' in g][0]
        heads = header_section(rest2)
        self.assertEqual(len([l for l in heads if l.lower().startswith(b'date:')]), 1, rest2)
        self.assertEqual([l for l in heads if l.lower().startswith(b'message-id:')],
                         [b'Message-ID: <given.1@client.example.org>'], rest2)

    def test_date_and_message_id_left_alone(self):
        s = self.server()
        c = self.logged_in(s)
        msg = make_message('has both', BODY, msgid='<kept.42@client.example.org>')
        self.send_raw(c, msg)
        got = s.messages(BOB)
        self.assertEqual(len(got), 1)
        self.assertEqual(split_delivered(got[0])[1], stored_form(msg), 'a message with Date and Message-ID '
                         'must be stored as sent')

    # -- failures look alike -------------------------------------------------------

    def test_wrong_password_unknown_and_disabled_user_alike(self):
        s = self.server(users=('alice', 'carol'), start=False)
        s.cli_ok('user', 'disable', 'carol@' + DOMAIN)
        s.start()
        replies = []
        for user, password in ((ALICE, 'wrong password'), ('nobody@' + DOMAIN, PASSWORD),
                               ('carol@' + DOMAIN, PASSWORD), ('nobody@unknown-domain.test', PASSWORD)):
            c, _ = self.starttls(s)
            t0 = time.monotonic()
            r = c.cmd('AUTH PLAIN ' + plain_ir(user, password))
            replies.append((user, r.raw, time.monotonic() - t0))
            self.assertReply(r, 535, '5.7.8')
            # still not authenticated
            self.assertReply(c.cmd('MAIL FROM:<%s>' % user), 530, '5.7.0')
            c.close()
        self.assertEqual(len(set(raw for _, raw, _ in replies)), 1, 'identical replies: %r' % replies)
        # LOGIN, step by step, fails the same way
        c, _ = self.starttls(s)
        self.assertReply(c.cmd('AUTH LOGIN ' + b64(ALICE)), 334)
        r = c.cmd(b64('wrong password'))
        self.assertEqual(r.raw, replies[0][1], 'LOGIN failure must read as PLAIN failure')
        self.assertNoSecretLogged(s, 'wrong password')

    def test_three_failures_close(self):
        s = self.server(users=('alice',))
        c, _ = self.starttls(s)
        for _ in range(2):
            self.assertReply(c.cmd('AUTH PLAIN ' + plain_ir(ALICE, 'nope')), 535, '5.7.8')
        self.assertReply(c.cmd('AUTH PLAIN ' + plain_ir(ALICE, 'nope')), 535, '5.7.8')
        rest = c.replies_until_close()
        self.assertTrue(rest and rest[0].code == 421, 'after 3 failures: 421 and close, got %r' % rest)

    # -- swaks ---------------------------------------------------------------------

    def swaks(self, s, listener, mech, *extra, password=PASSWORD):
        self.need('swaks')
        msg = make_message('swaks ' + mech, BODY)
        path = os.path.join(s.tmp, 'msg.eml')
        with open(path, 'wb') as f:
            f.write(msg[:-2].replace(b'\r\n', b'\n'))
        host, port = s.addr(listener)
        p = run(['swaks', '--server', host, '--port', str(port), '--from', ALICE, '--to', ALICE,
                 '--helo', 'client.example.org', '--data', '@' + path, '--timeout', '20',
                 '--tls-verify', '--tls-ca-path', self.ca.ca_cert,
                 '--auth', mech, '--auth-user', ALICE, '--auth-password', password] + list(extra))
        return p, msg

    def test_swaks_plain_starttls(self):
        s = self.server()
        p, msg = self.swaks(s, 'sub', 'PLAIN', '--tls')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertIn(b'=== TLS started with cipher', p.stdout, output(p))
        self.assertIn(b'235 2.7.0', p.stdout, output(p))
        self.assertSubmitted(s, msg)
        self.wait_log(s, r'auth ok mech=PLAIN user=%s' % re.escape(ALICE))

    def test_swaks_login_starttls(self):
        s = self.server()
        p, msg = self.swaks(s, 'sub', 'LOGIN', '--tls')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertSubmitted(s, msg)
        self.wait_log(s, r'auth ok mech=LOGIN user=%s' % re.escape(ALICE))

    def test_swaks_plain_implicit(self):
        s = self.server()
        p, msg = self.swaks(s, 'subs', 'PLAIN', '--tlsc')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertSubmitted(s, msg)

    def test_swaks_wrong_password(self):
        s = self.server()
        p, _ = self.swaks(s, 'sub', 'PLAIN', '--tls', password='not it')
        self.assertNotEqual(p.returncode, 0, output(p))
        self.assertIn(b'535 5.7.8', p.stdout + p.stderr, output(p))
        self.assertNoMail(s)

    # -- curl ----------------------------------------------------------------------

    def curl(self, s, url, login_options, *extra):
        self.need('curl')
        msg = make_message('curl ' + login_options, BODY)
        path = os.path.join(s.tmp, 'curl.eml')
        with open(path, 'wb') as f:
            f.write(msg)
        p = run(['curl', '--silent', '--show-error', '--max-time', '20', '--cacert', self.ca.ca_cert,
                 url, '--user', '%s:%s' % (ALICE, PASSWORD), '--login-options', login_options,
                 '--mail-from', ALICE, '--mail-rcpt', ALICE, '--upload-file', path] + list(extra))
        return p, msg

    def test_curl_plain_ssl_reqd(self):
        s = self.server()
        p, msg = self.curl(s, 'smtp://%s:%d/client.example.org' % s.addr('sub'), 'AUTH=PLAIN', '--ssl-reqd')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertSubmitted(s, msg)
        self.wait_log(s, r'auth ok mech=PLAIN user=%s' % re.escape(ALICE))

    def test_curl_login_smtps(self):
        s = self.server()
        p, msg = self.curl(s, 'smtps://%s:%d/client.example.org' % s.addr('subs'), 'AUTH=LOGIN')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertSubmitted(s, msg)
        self.wait_log(s, r'auth ok mech=LOGIN user=%s' % re.escape(ALICE))

    def test_curl_scram_sha256(self):
        self.need('curl')
        features = run(['curl', '--version']).stdout.decode()
        if not re.search(r'(?im)^Features:.*\bgsasl\b', features):
            self.skipTest('this curl is built without libgsasl (no SCRAM): %s' % features.splitlines()[0])
        s = self.server()
        p, msg = self.curl(s, 'smtp://%s:%d/client.example.org' % s.addr('sub'), 'AUTH=SCRAM-SHA-256',
                           '--ssl-reqd')
        self.assertEqual(p.returncode, 0, output(p))
        self.assertSubmitted(s, msg)

    # -- gsasl (GNU SASL's client) ---------------------------------------------------

    def gsasl(self, s, mech, password=PASSWORD, user=ALICE, listener='sub', *extra):
        self.need('gsasl')
        host, port = s.addr(listener)
        return run(['gsasl', '--smtp', '--starttls', '--x509-ca-file=' + self.ca.ca_cert, '--mechanism=' + mech,
                    '-a', user, '-p', password, '--verbose'] + list(extra) + [host, str(port)],
                   stdin=subprocess.DEVNULL, timeout=30)

    def test_gsasl_scram_sha256(self):
        s = self.server(users=('alice',))
        # gsasl 2.2's client, holding channel binding data from its TLS
        # session, refuses by itself to run a non -PLUS SCRAM (it never
        # sends a first message): --no-cb makes it a client without binding.
        p = self.gsasl(s, 'SCRAM-SHA-256', PASSWORD, ALICE, 'sub', '--no-cb')
        self.assertEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256 user=%s' % re.escape(ALICE))
        self.assertNoSecretLogged(s)

    def test_gsasl_scram_sha256_plus(self):
        s = self.server(users=('alice',))
        p = self.gsasl(s, 'SCRAM-SHA-256-PLUS')
        self.assertEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256-PLUS user=%s' % re.escape(ALICE))

    def test_gsasl_scram_sha256_plus_tls12(self):
        # TLS 1.2: the binding is tls-unique
        s = self.server(users=('alice',))
        p = self.gsasl(s, 'SCRAM-SHA-256-PLUS', PASSWORD, ALICE, 'sub', '--priority=NORMAL:-VERS-ALL:+VERS-TLS1.2')
        self.assertEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-256-PLUS user=%s' % re.escape(ALICE))

    def test_gsasl_scram_sha1_plus(self):
        s = self.server(users=('alice',))
        p = self.gsasl(s, 'SCRAM-SHA-1-PLUS')
        self.assertEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth ok mech=SCRAM-SHA-1-PLUS user=%s' % re.escape(ALICE))

    def test_gsasl_scram_wrong_password(self):
        s = self.server(users=('alice',))
        p = self.gsasl(s, 'SCRAM-SHA-256-PLUS', 'not the password')
        self.assertNotEqual(p.returncode, 0, output(p))
        self.wait_log(s, r'auth failed mech=SCRAM-SHA-256-PLUS')

    # -- hand-made SCRAM: channel binding ----------------------------------------------

    def test_scram_handmade_control(self):
        """The hand-made client succeeds where it should (so that its
        failures below are the server's refusals, not its own bugs)."""
        s = self.server(users=('alice',))
        c, _ = self.starttls(s)
        r = Scram('sha256', ALICE, PASSWORD, gs2='n,,').run(c, 'SCRAM-SHA-256')
        self.assertReply(r, 235, '2.7.0')
        # TLS 1.2: the right tls-unique binding -> 235
        ctx12 = self.ca.client_context()
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        c2, r = self.starttls(s, ctx=ctx12)
        self.assertIn('SCRAM-SHA-256-PLUS', auth_mechs(r))
        cb = c2.sock.get_channel_binding('tls-unique')
        self.assertTrue(cb)
        r = Scram('sha256', ALICE, PASSWORD, gs2='p=tls-unique,,', cbdata=cb).run(c2, 'SCRAM-SHA-256-PLUS')
        self.assertReply(r, 235, '2.7.0')
        self.assertReply(c2.cmd('MAIL FROM:<%s>' % ALICE), 250)

    def test_scram_plus_wrong_binding_tls13(self):
        s = self.server(users=('alice',))
        c, r = self.starttls(s)
        self.assertEqual(c.sock.version(), 'TLSv1.3')
        self.assertIn('SCRAM-SHA-256-PLUS', auth_mechs(r))
        sc = Scram('sha256', ALICE, PASSWORD, gs2='p=tls-exporter,,', cbdata=os.urandom(32))
        r = sc.run(c, 'SCRAM-SHA-256-PLUS')
        self.assertReply(r, 535, '5.7.8')
        self.assertReply(c.cmd('MAIL FROM:<%s>' % ALICE), 530, '5.7.0')
        self.wait_log(s, r'auth failed mech=SCRAM-SHA-256-PLUS')

    def test_scram_plus_wrong_binding_tls12(self):
        s = self.server(users=('alice',))
        ctx12 = self.ca.client_context()
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        c, _ = self.starttls(s, ctx=ctx12)
        good = c.sock.get_channel_binding('tls-unique')
        bad = bytes([good[0] ^ 1]) + good[1:]
        r = Scram('sha256', ALICE, PASSWORD, gs2='p=tls-unique,,', cbdata=bad).run(c, 'SCRAM-SHA-256-PLUS')
        self.assertReply(r, 535, '5.7.8')

    def test_scram_downgrade_flag_refused(self):
        """RFC 5802 6: a client that says "y" (it supports binding but
        thinks the server does not) while the server offers -PLUS is
        refused: someone removed -PLUS from the list on the way."""
        s = self.server(users=('alice',))
        c, r = self.starttls(s)
        self.assertIn('SCRAM-SHA-256-PLUS', auth_mechs(r))
        r = Scram('sha256', ALICE, PASSWORD, gs2='y,,').run(c, 'SCRAM-SHA-256')
        self.assertNotEqual(r.code, 235, r)
        self.assertEqual(r.code // 100, 5, r)

    def test_scram_plus_not_offered_in_clear(self):
        s = self.server(users=('alice',))
        c = s.connect('sub')
        self.addCleanup(c.close)
        self.assertReply(c.ehlo(), 250)
        r = c.cmd('AUTH SCRAM-SHA-256-PLUS ' + b64('p=tls-exporter,,n=%s,r=abcdefgh' % ALICE))
        self.assertIn(r.code, (504, 538), r)
        # plain SCRAM works in clear
        r = Scram('sha256', ALICE, PASSWORD).run(c, 'SCRAM-SHA-256')
        self.assertReply(r, 235, '2.7.0')

    # -- a user made before SCRAM --------------------------------------------------------

    def test_user_without_scram_secrets(self):
        self.need('openssl')
        s = self.server(users=('alice',), start=False)
        imported = 'imported pass phrase'
        h = subprocess.run(['openssl', 'passwd', '-6', '-stdin'], input=imported + '\n', capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(h.returncode, 0, h.stderr)
        s.cli_ok('user', 'import-hash', ALICE, input=h.stdout.strip() + '\n')
        s.start()
        # PLAIN with the imported password works
        c = self.logged_in(s, password=imported)
        self.assertReply(c.cmd('MAIL FROM:<%s>' % ALICE), 250)
        c.close()
        # SCRAM-SHA-256 does not (no secret): a challenge like anyone's, then 535
        c, _ = self.starttls(s)
        sc = Scram('sha256', ALICE, imported)
        r = sc.run(c, 'SCRAM-SHA-256')
        self.assertReply(r, 535, '5.7.8')
        salt1 = sc.salt
        c.close()
        # the fake salt is stable (else the lack of a secret shows)
        c, _ = self.starttls(s)
        sc = Scram('sha256', ALICE, imported)
        self.assertReply(sc.run(c, 'SCRAM-SHA-256'), 535, '5.7.8')
        self.assertEqual(sc.salt, salt1, 'the salt given for a user without SCRAM secrets must not change')
        c.close()
        # gsasl agrees
        if shutil.which('gsasl'):
            p = self.gsasl(s, 'SCRAM-SHA-256', imported)
            self.assertNotEqual(p.returncode, 0, output(p))
        # the next password change gives SCRAM
        s.cli_ok('user', 'passwd', ALICE, '--password-stdin', input=PASSWORD + '\n')
        c, _ = self.starttls(s)
        self.assertReply(Scram('sha256', ALICE, PASSWORD).run(c, 'SCRAM-SHA-256'), 235, '2.7.0')

    def test_scram_unknown_user_looks_real(self):
        s = self.server(users=('alice',))
        salts = []
        for _ in range(2):
            c, _ = self.starttls(s)
            sc = Scram('sha256', 'nobody@' + DOMAIN, PASSWORD)
            self.assertReply(sc.run(c, 'SCRAM-SHA-256'), 535, '5.7.8')
            salts.append((sc.salt, sc.iterations))
            c.close()
        self.assertEqual(salts[0], salts[1], 'an unknown user gets the same salt every time')
        c, _ = self.starttls(s)
        sc = Scram('sha256', ALICE, 'wrong')
        self.assertReply(sc.run(c, 'SCRAM-SHA-256'), 535, '5.7.8')
        self.assertEqual(sc.iterations, salts[0][1], 'same iteration count for a real and an unknown user')
        self.assertEqual(len(base64.b64decode(sc.salt)), len(base64.b64decode(salts[0][0])))


if __name__ == '__main__':
    unittest.main(verbosity=2)
