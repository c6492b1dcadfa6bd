"""Storage against hostile paths and damage (issue 8): symbolic links below
data_dir are never followed (a temporary error and a log line instead), every
file buzon creates is 0600 and every directory 0700, a Maildir deleted by
hand is made again, and a deleted or corrupt index is rebuilt from the
Maildir under a new UIDVALIDITY with nothing lost.
"""

import imaplib
import os
import poplib
import re
import shutil
import smtplib
import sqlite3
import stat
import unittest

from buzon_test import BuzonTestCase, PASSWORD, make_message, scaled

ALICE = 'alice@example.test'
SENDER = 'sender@client.example.org'
LISTENERS = {'mx': '127.0.0.1:0', 'imap': ('imap', '127.0.0.1:0'), 'pop': ('pop3', '127.0.0.1:0')}


def make_maildir(path):
    for sub in ('tmp', 'new', 'cur'):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def open_tree(path):
    """Anyone may write there: a followed link would succeed whoever the
    server runs as, so only the refusal keeps the tree empty."""
    for dirpath, dirs, files in os.walk(path):
        os.chmod(dirpath, 0o777)
    os.chmod(os.path.dirname(path), 0o755)


def files_below(path):
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, _, fs in os.walk(path) for f in fs)


class Paths(BuzonTestCase):

    def server(self):
        return self.new_server(users=('alice', 'bob'), listeners=LISTENERS)

    def smtp_code(self, s, rcpt, msgid):
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(30)) as c:
            c.ehlo('client.example.org')
            c.mail(SENDER)
            code, _ = c.rcpt(rcpt)
            if code >= 300:
                return code
            code, _ = c.data(make_message('x', msgid=msgid))
            return code

    def imap(self, s, user=ALICE):
        c = imaplib.IMAP4(*s.addr('imap'), timeout=scaled(20))
        c.login(user, PASSWORD)
        return c

    # -- symbolic links --------------------------------------------------------

    def test_symlinks(self):
        """Each of new/, tmp/, cur/, a folder, the user's and the domain's
        directory in turn becomes a link to a complete Maildir outside
        data_dir: deliveries and IMAP get temporary errors, nothing is
        written there."""
        cases = [
            # (what, path below the user's Maildir or '..', ...; checks)
            ('new/', 'new', ('smtp', 'select')),
            ('tmp/', 'tmp', ('smtp', 'append')),
            ('cur/', 'cur', ('select', 'append')),
            ('folder', '.Sent', ('append_sent', 'create_sent')),
            ('user directory', '', ('smtp', 'login', 'pop')),
            ('domain directory', '..', ('smtp', 'login', 'pop')),
        ]
        for what, rel, checks in cases:
            with self.subTest(what=what):
                s = self.server()
                with smtplib.SMTP(*s.addr('mx'), timeout=scaled(30)) as c:
                    c.sendmail(SENDER, [ALICE], make_message('before', msgid='<before@t>'))
                home = s.maildir(ALICE)
                link = os.path.normpath(os.path.join(home, rel)) if rel else home
                outside = os.path.join(s.tmp, 'outside')
                # The same shape as what the link replaces, Maildirs all the way down.
                target = os.path.join(outside, 'tree')
                if rel in ('new', 'tmp', 'cur'):
                    os.makedirs(os.path.join(target), exist_ok=True)
                elif rel == '.Sent':
                    make_maildir(target)
                elif rel == '':
                    make_maildir(target)
                    for f in ('.Sent', '.Drafts', '.Trash', '.Junk', '.Archive'):
                        make_maildir(os.path.join(target, f))
                else:
                    make_maildir(os.path.join(target, 'alice'))
                    make_maildir(os.path.join(target, 'bob'))
                open_tree(target)
                shutil.move(link, link + '.real')
                os.symlink(target, link)
                before = files_below(target)

                for check in checks:
                    if check == 'smtp':
                        self.assertEqual(self.smtp_code(s, ALICE, '<through@t>') // 100, 4, what)
                    elif check == 'select':
                        c = self.imap(s)
                        typ, data = c.select('INBOX')
                        self.assertEqual(typ, 'NO', (what, data))
                        c.logout()
                    elif check == 'append':
                        c = self.imap(s)
                        typ, data = c.append('INBOX', None, None, make_message('a', msgid='<app@t>'))
                        self.assertEqual(typ, 'NO', (what, data))
                        c.logout()
                    elif check == 'append_sent':
                        c = self.imap(s)
                        typ, data = c.append('Sent', None, None, make_message('a', msgid='<app@t>'))
                        self.assertEqual(typ, 'NO', (what, data))
                        typ, data = c.select('Sent')
                        self.assertEqual(typ, 'NO', (what, data))
                        c.logout()
                    elif check == 'create_sent':
                        c = self.imap(s)
                        typ, data = c.create('Sent')
                        self.assertEqual(typ, 'NO', (what, data))
                        c.logout()
                    elif check == 'login':
                        c = imaplib.IMAP4(*s.addr('imap'), timeout=scaled(20))
                        with self.assertRaises(imaplib.IMAP4.error, msg=what):
                            c.login(ALICE, PASSWORD)
                            c.select('INBOX')
                            raise imaplib.IMAP4.error('selected')   # reached only without the refusal
                        c.logout()
                    elif check == 'pop':
                        p = poplib.POP3(*s.addr('pop'), timeout=scaled(20))
                        p.user(ALICE)
                        with self.assertRaises(poplib.error_proto, msg=what):
                            p.pass_(PASSWORD)
                        p.close()
                self.assertEqual(files_below(target), before, '%s: written through the link' % what)
                self.assertRegex(s.log(), r'symbolic link (refused|below data_dir)', what)

                # Another user of the same server is not hurt (the domain case aside).
                if rel != '..':
                    self.assertEqual(self.smtp_code(s, 'bob@example.test', '<bob@t>'), 250)

                # The start-up sweep does not empty a linked tmp/.
                if rel == 'tmp':
                    with open(os.path.join(target, 'precious'), 'w') as f:
                        f.write('keep')
                    s.stop()
                    s.start()
                    self.assertTrue(os.path.exists(os.path.join(target, 'precious')))

    # -- modes -----------------------------------------------------------------

    def test_modes(self):
        s = self.server()
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(30)) as c:
            c.sendmail(SENDER, [ALICE, 'bob@example.test'], make_message('m', msgid='<m@t>'))
        c = self.imap(s)
        self.assertEqual(c.create('Projects.2026')[0], 'OK')
        self.assertEqual(c.append('Projects.2026', r'(\Seen)', None, make_message('p'))[0], 'OK')
        self.assertEqual(c.select('INBOX')[0], 'OK')
        self.assertEqual(c.store('1', '+FLAGS', r'(\Flagged $Work)')[0], 'OK')
        self.assertEqual(c.subscribe('Projects.2026')[0], 'OK')
        c.logout()
        p = poplib.POP3(*s.addr('pop'), timeout=scaled(20))
        p.user('bob@example.test')
        p.pass_(PASSWORD)
        p.quit()
        s.stop()
        seen = {'buzon-index.db': 0, 'buzon-index.db-wal': 0, 'buzon-index.db-shm': 0}
        bad = []
        for dirpath, dirs, files in os.walk(s.data_dir):
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
                if stat.S_IMODE(st.st_mode) != want:
                    bad.append('%o %s' % (stat.S_IMODE(st.st_mode), os.path.relpath(p, s.data_dir)))
                if name in seen:
                    seen[name] += 1
        self.assertEqual(bad, [])
        self.assertGreaterEqual(seen['buzon-index.db'], 2, seen)   # alice's and bob's
        self.assertGreaterEqual(seen['buzon-index.db-wal'], 1, seen)

    # -- a Maildir deleted by hand ------------------------------------------

    def test_maildir_deleted_by_hand(self):
        s = self.server()
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(30)) as c:
            c.sendmail(SENDER, [ALICE], make_message('before'))
        shutil.rmtree(s.maildir(ALICE))
        self.assertEqual(self.smtp_code(s, ALICE, '<after@t>'), 250)
        self.assertEqual(len(s.messages(ALICE)), 1)
        self.assertRegex(s.log(), r'maildir was missing and is made again|missing maildir')
        shutil.rmtree(s.maildir(ALICE))
        c = self.imap(s)
        self.assertEqual(c.select('INBOX'), ('OK', [b'0']))
        c.logout()
        shutil.rmtree(s.maildir(ALICE))
        p = poplib.POP3(*s.addr('pop'), timeout=scaled(20))
        p.user(ALICE)
        self.assertTrue(p.pass_(PASSWORD).startswith(b'+OK'))
        self.assertEqual(p.stat()[0], 0)
        p.quit()

    # -- a deleted or corrupt index -----------------------------------------------

    def select_state(self, c):
        typ, data = c.select('INBOX')
        self.assertEqual(typ, 'OK', data)
        uidvalidity = int(c.response('UIDVALIDITY')[1][0])
        typ, data = c.uid('FETCH', '1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        ids = sorted(re.search(rb'<[^>]+>', d[1]).group(0) for d in data if isinstance(d, tuple))
        return uidvalidity, ids

    def test_index_deleted_and_corrupt(self):
        s = self.server()
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(30)) as c:
            for i in range(3):
                c.sendmail(SENDER, [ALICE], make_message('m%d' % i, msgid='<m%d@t>' % i))
        index = os.path.join(s.maildir(ALICE), 'buzon-index.db')
        c = self.imap(s)
        v0, ids = self.select_state(c)
        self.assertEqual(len(ids), 3)
        self.assertEqual(c.store('1', '+FLAGS', r'(\Seen)')[0], 'OK')
        c.logout()

        # Deleted while the server runs (its -wal and -shm stay behind).
        os.unlink(index)
        held = self.imap(s)   # a session that opens the new one and stays
        v1, ids1 = self.select_state(held)
        self.assertNotEqual(v1, v0)
        self.assertEqual(ids1, ids)
        typ, data = held.fetch('1', '(FLAGS)')
        self.assertIn(rb'\Seen', data[0])   # flags come back from the file names

        # Overwritten with garbage (after SQLite folded its WAL into it, so
        # that the garbage is what is read) while a session has it open.
        db = sqlite3.connect(index)
        db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        db.close()
        with open(index, 'r+b') as f:
            f.write(bytes((i * 7 + 3) & 0xff for i in range(16384)))
        # The session that had it keeps its UIDs and can still read.
        self.assertEqual(held.noop()[0], 'OK')
        typ, data = held.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        self.assertEqual(typ, 'OK')
        self.assertEqual(len([d for d in data if isinstance(d, tuple)]), 3)
        held.logout()
        c = self.imap(s)
        v2, ids2 = self.select_state(c)
        self.assertNotEqual(v2, v1)
        self.assertEqual(ids2, ids)
        c.logout()
        aside = [f for f in os.listdir(s.maildir(ALICE)) if f.startswith('buzon-index.db.corrupt-')]
        self.assertTrue(aside, os.listdir(s.maildir(ALICE)))
        self.assertIn('index corrupt, rebuilt from the maildir', s.log())
        # Deliveries go on into the rebuilt index.
        self.assertEqual(self.smtp_code(s, ALICE, '<m3@t>'), 250)
        c = self.imap(s)
        v3, ids3 = self.select_state(c)
        self.assertEqual((v3, len(ids3)), (v2, 4))
        c.logout()


if __name__ == '__main__':
    unittest.main()
