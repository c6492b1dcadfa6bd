"""A full data file system (issue 8): deliveries get 452 4.3.1, and users can
still log in, read, and expunge or delete mail (which is how they free
space); once there is space again everything works and nothing was lost.

The data_dir is a small tmpfs mounted for the test (the tests run as root);
without the right to mount, the test is skipped and says why.
"""

import imaplib
import os
import poplib
import re
import smtplib
import subprocess
import unittest

from buzon_test import BuzonTestCase, PASSWORD, make_message, scaled

ALICE = 'alice@example.test'
BOB = 'bob@example.test'
SENDER = 'sender@client.example.org'
LISTENERS = {'mx': '127.0.0.1:0', 'imap': ('imap', '127.0.0.1:0'), 'pop': ('pop3', '127.0.0.1:0')}


def msgid_of(data):
    m = re.search(rb'^Message-ID:\s*(<[^>]+>)', data, re.M | re.I)
    return m.group(1).decode() if m else None


class FullDisk(BuzonTestCase):

    def mount_tmpfs(self, s, size='8m'):
        os.makedirs(s.data_dir, exist_ok=True)
        p = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0700' % size, 'buzon-test',
                            s.data_dir], capture_output=True, text=True)
        if p.returncode != 0:
            self.skipTest('cannot mount a tmpfs for the full disk (%s): %s' %
                          ('not root' if os.geteuid() else 'mount refused', p.stderr.strip()))

        def unmount():
            s.stop()
            subprocess.run(['umount', s.data_dir], capture_output=True)
        self.addCleanup(unmount)

    def fill(self, s):
        """Fills the file system up to its last block; returns the file's path."""
        path = os.path.join(s.data_dir, 'fill')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (1 << 20, 65536, 4096, 512, 1):
                try:
                    while True:
                        os.write(fd, b'\0' * size)
                except OSError:
                    pass
        finally:
            os.close(fd)
        st = os.statvfs(s.data_dir)
        self.assertEqual(st.f_bavail, 0, 'the file system is not full')
        return path

    def imap(self, s, user=ALICE):
        c = imaplib.IMAP4(*s.addr('imap'), timeout=scaled(20))
        c.login(user, PASSWORD)
        return c

    def mail_files(self, s, user, subs=('new', 'cur', 'tmp')):
        out = {}
        base = s.maildir(user)
        for dirpath, _, files in os.walk(base):
            if os.path.basename(dirpath) in subs:
                for f in files:
                    out[os.path.relpath(os.path.join(dirpath, f), base)] = open(
                        os.path.join(dirpath, f), 'rb').read()
        return out

    def uids(self, c):
        typ, data = c.uid('FETCH', '1:*', '(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        self.assertEqual(typ, 'OK')
        out = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
                out[msgid_of(item[1])] = uid
        return out

    def test_full_disk(self):
        s = self.new_server(start=False, users=False, listeners=LISTENERS)
        self.mount_tmpfs(s)
        s.setup_users(users=('alice', 'bob'))
        s.start()
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(30)) as c:
            for i in range(4):
                c.sendmail(SENDER, [ALICE], make_message('a%d' % i, msgid='<a%d@t>' % i))
            for i in range(3):
                c.sendmail(SENDER, [BOB], make_message('b%d' % i, msgid='<b%d@t>' % i))
        # Alice's index exists before the disk fills; Bob's does not.
        c = self.imap(s)
        typ, data = c.select('INBOX')
        self.assertEqual((typ, data), ('OK', [b'4']))
        uidvalidity = c.response('UIDVALIDITY')[1][0]
        before = self.uids(c)
        c.logout()

        fill = self.fill(s)

        # Deliveries: a temporary "insufficient storage", nothing half-written.
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(30)) as c:
            c.ehlo('client.example.org')
            c.mail(SENDER)
            c.rcpt(ALICE)
            code, text = c.data(make_message('full', msgid='<full@t>'))
            self.assertEqual((code, text[:5]), (452, b'4.3.1'), text)
        self.assertEqual([f for f in self.mail_files(s, ALICE) if f.startswith('tmp/')], [])

        # IMAP: login, STATUS, SELECT, FETCH, STORE \Deleted, EXPUNGE.
        c = self.imap(s)
        typ, data = c.status('Sent', '(MESSAGES UIDNEXT)')
        self.assertEqual(typ, 'OK', data)
        typ, data = c.select('INBOX')
        self.assertEqual((typ, data), ('OK', [b'4']))
        self.assertEqual(c.response('UIDVALIDITY')[1][0], uidvalidity)
        self.assertEqual(self.uids(c), before)
        typ, data = c.fetch('1', '(BODY.PEEK[])')
        self.assertEqual(typ, 'OK')
        self.assertEqual(msgid_of(data[0][1]), '<a0@t>')
        typ, data = c.store('1', '+FLAGS', r'(\Deleted)')
        self.assertEqual(typ, 'OK', data)
        typ, data = c.expunge()
        self.assertEqual((typ, data), ('OK', [b'1']))
        # A message that cannot be stored is refused, not half-stored.
        typ, data = c.append('INBOX', None, None, make_message('appended', msgid='<app@t>'))
        self.assertEqual(typ, 'NO', data)
        c.logout()
        files = self.mail_files(s, ALICE)
        self.assertEqual(sorted(msgid_of(d) for d in files.values()), ['<a1@t>', '<a2@t>', '<a3@t>'])

        # POP3, for a user whose index was never written: login, RETR, DELE, QUIT.
        p = poplib.POP3(*s.addr('pop'), timeout=scaled(20))
        p.user(BOB)
        self.assertTrue(p.pass_(PASSWORD).startswith(b'+OK'))
        self.assertEqual(p.stat()[0], 3)
        resp, lines, _ = p.retr(1)
        self.assertEqual(msgid_of(b'\n'.join(lines)), '<b0@t>')
        self.assertTrue(p.dele(1).startswith(b'+OK'))
        self.assertTrue(p.quit().startswith(b'+OK'))
        files = self.mail_files(s, BOB)
        self.assertEqual(sorted(msgid_of(d) for d in files.values()), ['<b1@t>', '<b2@t>'])

        # Space again: deliveries, and the index catches up; nothing lost.
        os.unlink(fill)
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(30)) as c:
            self.assertEqual(c.sendmail(SENDER, [ALICE, BOB], make_message('after', msgid='<after@t>')), {})
        c = self.imap(s)
        typ, data = c.select('INBOX')
        self.assertEqual((typ, data), ('OK', [b'4']))
        self.assertEqual(c.response('UIDVALIDITY')[1][0], uidvalidity)
        now = self.uids(c)
        self.assertEqual({k: v for k, v in now.items() if k != '<after@t>'},
                         {k: v for k, v in before.items() if k != '<a0@t>'})
        self.assertGreater(now['<after@t>'], max(before.values()))
        typ, data = c.append('INBOX', None, None, make_message('appended', msgid='<app@t>'))
        self.assertEqual(typ, 'OK', data)
        c.logout()
        p = poplib.POP3(*s.addr('pop'), timeout=scaled(20))
        p.user(BOB)
        p.pass_(PASSWORD)
        self.assertEqual(p.stat()[0], 3)
        p.quit()
        for user in (ALICE, BOB):
            self.assertEqual([f for f in self.mail_files(s, user) if f.startswith('tmp/')], [])
        self.assertIn('result=no_space', s.log())


if __name__ == '__main__':
    unittest.main()
