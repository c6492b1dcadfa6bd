"""IMAP with real clients (issue 4): curl imap://, mbsync (isync) two-way
sync with a local Maildir, fetchmail and getmail6 over IMAP, against the
real binary. Mail goes in over SMTP; the server side is checked with
Python's imaplib.

What is compared: the message as the SMTP client sent it (CRLF line ends)
against what the IMAP client got, apart from the trace headers added on the
way (Return-Path, Delivered-To, Received) and, where the client stores mail
with LF line ends (Maildir), CRLF.

A test is skipped only when its client binary is missing.
"""

import imaplib
import os
import re
import shutil
import subprocess
import unittest

from buzon_test import PASSWORD, make_message, scaled, split_delivered, stored_form, subprocess_env
from test_imap_core import ALICE, IMAPTestCase

BODIES = [
    b'Hello.\r\n',
    b'.\r\n..\r\n.leading dot\r\n. \r\nlast\r\n',
    b'\r\n\r\n  indented\t\r\ntrailing space \r\ncaf\xc3\xa9 \xe2\x82\xac\r\n\r\n',
    b'x' * 998 + b'\r\nshort\r\n',
]


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, timeout=scaled(60), env=kw.pop('env', subprocess_env()),
                          **kw)


def subject_of(data):
    m = re.search(rb'^Subject: (.*?)\r?$', data, re.M)
    return m.group(1).decode() if m else None


def maildir_info(name):
    """The flag letters of a Maildir file name ("" when none)."""
    return name.split(':2,', 1)[1] if ':2,' in name else ''


class ClientsTestCase(IMAPTestCase):

    def need(self, binary):
        if not shutil.which(binary):
            self.skipTest('%s is not installed (Debian package: %s)' %
                          (binary, {'mbsync': 'isync', 'getmail': 'getmail6'}.get(binary, binary)))

    def imaplib(self, s, user=ALICE):
        host, port = s.addr('imap')
        c = imaplib.IMAP4(host, port, timeout=scaled(30))
        self.addCleanup(self._logout, c)
        typ, _ = c.login(user, PASSWORD)
        self.assertEqual(typ, 'OK')
        return c

    @staticmethod
    def _logout(c):
        try:
            c.logout()
        except Exception:
            pass

    def server_messages(self, s):
        """{subject: (uid, flags)} of alice's INBOX, read with imaplib."""
        c = self.imaplib(s)
        typ, _ = c.select('INBOX')
        self.assertEqual(typ, 'OK')
        typ, data = c.uid('FETCH', '1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
        self.assertEqual(typ, 'OK', data)
        out = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, hdr = item
            uid = int(re.search(rb'UID (\d+)', meta).group(1))
            flags = re.search(rb'FLAGS \(([^)]*)\)', meta).group(1).decode().split()
            out[subject_of(hdr)] = (uid, set(flags))
        c.logout()
        return out

    def store_and_expunge(self, s, uids_flags, expunge=False):
        c = self.imaplib(s)
        self.assertEqual(c.select('INBOX')[0], 'OK')
        for uid, flags in uids_flags:
            typ, data = c.uid('STORE', str(uid), '+FLAGS', '(%s)' % flags)
            self.assertEqual(typ, 'OK', data)
        if expunge:
            typ, data = c.expunge()
            self.assertEqual(typ, 'OK', data)
        c.logout()

    def assertRetrieved(self, data, sent, lf=False):
        """data: what a client got; sent: what the SMTP client sent (CRLF)."""
        headers, rest = split_delivered(data)
        self.assertEqual(sorted(set(h[0] for h in headers)), ['delivered-to', 'received', 'return-path'],
                         headers)
        self.assertEqual(rest, stored_form(sent) if lf else sent)


class Curl(ClientsTestCase):

    def test_curl_list_and_fetch_by_uid(self):
        self.need('curl')
        s = self.imap_server()
        sent = [make_message('curl %d' % i, b) for i, b in enumerate(BODIES)]
        for m in sent:
            self.send(s, m)
        host, port = s.addr('imap')
        base = 'imap://%s:%d/' % (host, port)
        auth = ['--user', '%s:%s' % (ALICE, PASSWORD)]
        # the mailbox list: INBOX and the special-use folders of a new user
        p = run(['curl', '-sS'] + auth + [base])
        self.assertEqual(p.returncode, 0, p.stderr)
        listing = p.stdout.decode('latin-1').splitlines()
        self.assertTrue(all(re.match(r'^\* LIST \(.*\) (NIL|"[./]") .+$', l) for l in listing), listing)
        names = [l.rsplit(' ', 1)[1].strip('"') for l in listing]
        for name in ('INBOX', 'Drafts', 'Sent', 'Trash', 'Junk', 'Archive'):
            self.assertIn(name, names, listing)
        # expunge the first message so that UIDs and sequence numbers differ
        self.store_and_expunge(s, [(1, '\\Deleted')], expunge=True)
        for uid in (2, 3, 4):
            p = run(['curl', '-sS'] + auth + [base + 'INBOX;UID=%d' % uid])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRetrieved(p.stdout, sent[uid - 1])
        # a SEARCH through the URL query
        p = run(['curl', '-sS'] + auth + [base + 'INBOX?SUBJECT%20%22curl%202%22'])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().strip(), '* SEARCH 2')
        # an unknown UID fails; bad credentials fail
        p = run(['curl', '-sS'] + auth + [base + 'INBOX;UID=99'])
        self.assertNotEqual(p.returncode, 0)
        p = run(['curl', '-sS', '--user', ALICE + ':wrong', base])
        self.assertNotEqual(p.returncode, 0)


class Mbsync(ClientsTestCase):

    def mbsync(self, s, home):
        host, port = s.addr('imap')
        local = os.path.join(home, 'Mail')
        os.makedirs(local, exist_ok=True)
        rc = os.path.join(home, 'mbsyncrc')
        with open(rc, 'w') as f:
            # isync 1.4 (Debian 12): SSLType, Far/Near
            f.write('IMAPAccount buzon\nHost %s\nPort %d\nUser %s\nPass "%s"\nSSLType None\nAuthMechs PLAIN\n\n'
                    'IMAPStore remote\nAccount buzon\n\n'
                    'MaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n'
                    'Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nExpunge Both\n'
                    'SyncState *\nSync All\n' % (host, port, ALICE, PASSWORD, local, local))
        env = subprocess_env()
        env['HOME'] = home
        p = run(['mbsync', '-c', rc, '-V', 'sync'], env=env)
        self.assertEqual(p.returncode, 0, p.stdout.decode('latin-1')[-4000:] + p.stderr.decode('latin-1')[-4000:])
        return os.path.join(local, 'INBOX')

    def local_messages(self, inbox):
        """{subject: (path, flag letters, content)} of the local Maildir."""
        out = {}
        for sub in ('new', 'cur'):
            d = os.path.join(inbox, sub)
            for name in os.listdir(d):
                path = os.path.join(d, name)
                with open(path, 'rb') as f:
                    data = f.read()
                out[subject_of(data)] = (path, maildir_info(name), data)
        return out

    def test_mbsync_two_way_flags_and_deletions(self):
        self.need('mbsync')
        s = self.imap_server()
        sent = [make_message('sync %d' % i, b) for i, b in enumerate(BODIES)]
        for m in sent:
            self.send(s, m)
        home = os.path.join(s.tmp, 'mbsync-home')
        os.makedirs(home)
        inbox = self.mbsync(s, home)
        local = self.local_messages(inbox)
        self.assertEqual(sorted(local), ['sync %d' % i for i in range(4)])
        for i, m in enumerate(sent):
            data = local['sync %d' % i][2]
            # isync marks what it propagates with an X-TUID header (its
            # crash recovery), at the end of the header
            data = re.sub(rb'\nX-TUID: [^\r\n]*(\r?\n)', rb'\1', data, count=1)
            # mbsync stores what it fetched (CRLF or LF, as its build says)
            if b'\r\n' not in data:
                self.assertRetrieved(data, m, lf=True)
            else:
                self.assertRetrieved(data, m)
        # flags both ways: \Flagged set locally, \Seen \Answered on the server
        path, info, _ = local['sync 0']
        base = os.path.basename(path).split(':2,')[0]
        os.rename(path, os.path.join(inbox, 'cur', base + ':2,' + ''.join(sorted(info + 'F'))))
        srv = self.server_messages(s)
        self.store_and_expunge(s, [(srv['sync 1'][0], '\\Seen \\Answered')])
        self.mbsync(s, home)
        srv = self.server_messages(s)
        self.assertIn('\\Flagged', srv['sync 0'][1], srv)
        local = self.local_messages(inbox)
        self.assertIn('S', local['sync 1'][1], local)
        self.assertIn('R', local['sync 1'][1], local)
        self.assertIn('F', local['sync 0'][1], local)
        # deletions both ways: a local file removed, a message expunged on the server
        os.unlink(local['sync 2'][0])
        self.store_and_expunge(s, [(srv['sync 3'][0], '\\Deleted')], expunge=True)
        self.mbsync(s, home)
        srv = self.server_messages(s)
        self.assertEqual(sorted(srv), ['sync 0', 'sync 1'], srv)
        local = self.local_messages(inbox)
        self.assertEqual(sorted(local), ['sync 0', 'sync 1'])
        # a new delivery after all that comes down alone
        new = make_message('sync new', b'fresh\r\n')
        self.send(s, new)
        self.mbsync(s, home)
        local = self.local_messages(inbox)
        self.assertEqual(sorted(local), ['sync 0', 'sync 1', 'sync new'])
        # and a second run with nothing to do changes nothing
        self.mbsync(s, home)
        self.assertEqual(sorted(self.local_messages(inbox)), ['sync 0', 'sync 1', 'sync new'])
        self.assertEqual(sorted(self.server_messages(s)), ['sync 0', 'sync 1', 'sync new'])


class Fetchers(ClientsTestCase):

    def test_fetchmail_imap_to_mda(self):
        self.need('fetchmail')
        s = self.imap_server()
        sent = [make_message('fetchmail %d' % i, b) for i, b in enumerate(BODIES)]
        for m in sent:
            self.send(s, m)
        home = os.path.join(s.tmp, 'fetchmail-home')
        out = os.path.join(s.tmp, 'fetchmail-out')
        os.makedirs(home)
        os.makedirs(out)
        host, port = s.addr('imap')
        rc = os.path.join(home, '.fetchmailrc')
        with open(rc, 'w') as f:
            f.write('set no bouncemail\nset no syslog\n'
                    'poll %s service %d protocol imap auth password\n'
                    '  user "%s" password "%s" is "alice" here\n'
                    '  sslproto \'\'\n'
                    '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n' % (host, port, ALICE, PASSWORD, out))
        os.chmod(rc, 0o600)
        env = subprocess_env()
        env['HOME'] = home
        p = run(['fetchmail', '-f', rc, '-v', '--nodetach'], env=env)
        self.assertEqual(p.returncode, 0, p.stdout.decode('latin-1')[-4000:] + p.stderr.decode('latin-1'))
        got = []
        for name in os.listdir(out):
            with open(os.path.join(out, name), 'rb') as f:
                got.append(f.read())
        self.assertEqual(len(got), len(sent))
        # fetchmail hands the MDA LF line ends and adds its own Received
        self.assertEqual(sorted(split_delivered(g)[1] for g in got), sorted(stored_form(m) for m in sent))
        # fetchmail deletes what it fetched (STORE \Deleted, EXPUNGE)
        self.assertEqual(self.server_messages(s), {})

    def test_getmail_imap_to_maildir(self):
        self.need('getmail')
        s = self.imap_server()
        sent = [make_message('getmail %d' % i, b) for i, b in enumerate(BODIES)]
        for m in sent:
            self.send(s, m)
        gdir = os.path.join(s.tmp, 'getmail')
        maildir = os.path.join(s.tmp, 'Maildir')
        os.makedirs(gdir)
        os.chmod(s.tmp, 0o755)
        for sub in ('', 'new', 'cur', 'tmp'):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
            # getmail refuses to deliver as root: it delivers as nobody
            os.chmod(os.path.join(maildir, sub), 0o777)
        host, port = s.addr('imap')

        def getmail(delete=False):
            rc = os.path.join(gdir, 'getmailrc')
            with open(rc, 'w') as f:
                f.write('[retriever]\ntype = SimpleIMAPRetriever\nserver = %s\nport = %d\n'
                        'username = %s\npassword = %s\nmailboxes = ("INBOX",)\n\n'
                        '[destination]\ntype = Maildir\npath = %s/\n%s\n'
                        '[options]\nread_all = false\ndelete = %s\ndelivered_to = false\nreceived = false\n'
                        'verbose = 2\n' % (host, port, ALICE, PASSWORD, maildir,
                                           'user = nobody\n' if os.geteuid() == 0 else '',
                                           'true' if delete else 'false'))
            p = run(['getmail', '--getmaildir', gdir, '--rcfile', rc])
            self.assertEqual(p.returncode, 0, p.stdout.decode('latin-1') + p.stderr.decode('latin-1'))
            files = []
            for sub in ('new', 'cur'):
                for name in sorted(os.listdir(os.path.join(maildir, sub))):
                    with open(os.path.join(maildir, sub, name), 'rb') as f:
                        files.append(f.read())
            # getmail adds its own header to the message header
            return [f.replace(b'X-getmail-retrieved-from-mailbox: INBOX\n', b'', 1) for f in files]

        got = getmail()
        self.assertEqual(sorted(split_delivered(g)[1] for g in got), sorted(stored_form(m) for m in sent))
        # a second run fetches nothing new (getmail remembers UIDs)
        self.assertEqual(len(getmail()), len(sent))
        # a new message comes alone; with delete it leaves the server
        new = make_message('getmail new', b'fresh\r\n')
        self.send(s, new)
        got = getmail(delete=True)
        self.assertEqual(len(got), len(sent) + 1)
        self.assertIn(stored_form(new), [split_delivered(g)[1] for g in got])
        self.assertEqual(self.server_messages(s), {})


if __name__ == '__main__':
    unittest.main(verbosity=2)
