"""Fault injection into storage (issue 8): every step of a delivery, APPEND,
COPY, MOVE, EXPUNGE, STORE and POP3 DELE+QUIT fails in turn, with ENOSPC and
with EIO, through the libfiu failure points of a build configured with
-Dfailpoints=true (docs/testing.md). For each: the client gets a temporary
error, the Maildir (file names in new/, cur/ and tmp/) and the IMAP view
are exactly as before, and the same operation succeeds once the fault is
gone. Where the Maildir carries a change although the index cannot record
it (an unlink, a flag rename: the Maildir is the truth), the operation
succeeds and the index catches up; the cases say which.

Without failure points in the binary the test is skipped.
"""

import contextlib
import errno
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
CAROL = 'carol@example.test'
SENDER = 'sender@client.example.org'
LISTENERS = {'mx': '127.0.0.1:0', 'imap': ('imap', '127.0.0.1:0'), 'pop': ('pop3', '127.0.0.1:0')}
ERRNOS = (errno.ENOSPC, errno.EIO)

INDEX = ['storage/mailbox-index/begin', 'storage/mailbox-index/step', 'storage/mailbox-index/commit']
PATH = 'storage/path/open'

# What the client and the mailbox see with the fault on:
#   fail   - temporary error, nothing changed
#   done   - success: the Maildir carries it, the index catches up
#   undurable - temporary error (an fsync of the directory failed after the
#            unlinks: they may not survive a crash, so no success is
#            claimed), but the files are gone and stay gone
SMTP_POINTS = [(p, 'fail') for p in ('storage/maildir/open', 'storage/maildir/write', 'storage/maildir/fsync',
                                     'storage/maildir/rename', 'storage/maildir/fsync-dir', PATH)]
APPEND_POINTS = [(p, 'fail') for p in ('storage/mailbox-save/open', 'storage/mailbox-save/write',
                                       'storage/mailbox-save/fsync', 'storage/mailbox-save/rename',
                                       'storage/mailbox-save/fsync-dir', PATH)] + [(p, 'fail') for p in INDEX]
COPY_POINTS = [(p, 'fail') for p in ('storage/mailbox-save/link', 'storage/mailbox-save/fsync-dir', PATH)] + \
    [(p, 'fail') for p in INDEX]
MOVE_POINTS = [(p, 'fail') for p in ('storage/mailbox-save/rename', 'storage/mailbox-save/fsync-dir', PATH)] + \
    [(p, 'fail') for p in INDEX]
EXPUNGE_POINTS = [('storage/mailbox-flags/unlink', 'fail'), ('storage/mailbox-flags/fsync-dir', 'undurable'),
                  (PATH, 'fail')] + [(p, 'done') for p in INDEX]
STORE_POINTS = [('storage/mailbox-flags/rename', 'fail'), (PATH, 'fail')] + [(p, 'done') for p in INDEX]
KEYWORD_POINTS = [('storage/mailbox-flags/rename', 'fail')] + [(p, 'fail') for p in INDEX]
POP3_POINTS = EXPUNGE_POINTS


def msgid(data):
    m = re.search(rb'^Message-ID:\s*(<[^>]+>)', data, re.M | re.I)
    return m.group(1).decode() if m else None


class Faults(BuzonTestCase):

    def setUp(self):
        super().setUp()
        self.n = 0
        self.viewers = {}
        self.s = self.new_server(listeners=LISTENERS)
        self.addCleanup(lambda: [c.logout() for c in self.viewers.values()])
        self.fifo = '%s/fiu-ctrl-%d.in' % (os.environ.get('TMPDIR') or '/tmp', self.s.proc.pid)
        if not os.path.exists(self.fifo):
            self.skipTest('buzon built without failure points (meson -Dfailpoints=true)')

    # -- tools ------------------------------------------------------------------

    def ctl(self, command):
        p = subprocess.run(['fiu-ctrl', '-c', command, str(self.s.proc.pid)], capture_output=True, text=True,
                           timeout=scaled(10))
        self.assertEqual(p.returncode, 0, '%s: %s' % (command, p.stderr))

    @contextlib.contextmanager
    def fault(self, point, err, onetime=False):
        self.ctl('enable name=%s,failnum=%d%s' % (point, err, ',onetime=1' if onetime else ''))
        try:
            yield
        finally:
            self.ctl('disable name=%s' % point)

    def new_id(self):
        self.n += 1
        return '<f%d@t>' % self.n

    def deliver(self, rcpts, count=1):
        ids = []
        with smtplib.SMTP(*self.s.addr('mx'), timeout=scaled(30)) as c:
            for _ in range(count):
                i = self.new_id()
                self.assertEqual(c.sendmail(SENDER, rcpts, make_message('m', msgid=i)), {})
                ids.append(i)
        return ids

    def names(self, user, folder=None):
        """The file names of the folder's new/, cur/ and tmp/."""
        base = self.s.maildir(user, folder)
        return sorted('%s/%s' % (sub, n) for sub in ('new', 'cur', 'tmp')
                      for n in os.listdir(os.path.join(base, sub)))

    def imap(self, user=ALICE, select=None):
        c = imaplib.IMAP4(*self.s.addr('imap'), timeout=scaled(20))
        c.login(user, PASSWORD)
        if select:
            typ, data = c.select(select)
            self.assertEqual(typ, 'OK', data)
        return c

    def view(self, user=ALICE, folder='INBOX'):
        """UIDVALIDITY and (uid, flags, Message-ID) of every message, as an
        EXAMINE (a new open of the folder) shows them."""
        c = self.viewers.get(user)
        if c is None:
            c = self.viewers[user] = self.imap(user)
        typ, data = c.select(folder, readonly=True)
        self.assertEqual(typ, 'OK', data)
        v = c.response('UIDVALIDITY')[1][0]
        typ, data = c.uid('FETCH', '1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        out = []
        for d in data:
            if isinstance(d, tuple):
                uid = int(re.search(rb'UID (\d+)', d[0]).group(1))
                flags = sorted(f for f in re.search(rb'FLAGS \(([^)]*)\)', d[0]).group(1).decode().split()
                               if f != '\\Recent')
                out.append((uid, tuple(flags), msgid(d[1])))
        return v, sorted(out)

    def state(self, user=ALICE, folders=('INBOX',)):
        return {f: (self.names(user, None if f == 'INBOX' else f), self.view(user, f)) for f in folders}

    # -- SMTP -------------------------------------------------------------------

    def test_smtp(self):
        for rcpts in ([ALICE], [ALICE, BOB, CAROL]):
            for point, _ in SMTP_POINTS:
                for err in ERRNOS:
                    with self.subTest(rcpts=len(rcpts), point=point, errno=errno.errorcode[err]):
                        before = {u: self.names(u) for u in rcpts}
                        with self.fault(point, err):
                            with self.assertRaises((smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused)) as cm:
                                with smtplib.SMTP(*self.s.addr('mx'), timeout=scaled(30)) as c:
                                    c.sendmail(SENDER, rcpts, make_message('x', msgid=self.new_id()))
                            e = cm.exception
                            code = e.smtp_code if hasattr(e, 'smtp_code') else \
                                min(v[0] for v in e.recipients.values())
                            self.assertEqual(code // 100, 4, e)
                            if err == errno.ENOSPC and point != PATH:
                                self.assertEqual(code, 452, e)
                        self.assertEqual({u: self.names(u) for u in rcpts}, before)
                        ids = self.deliver(rcpts)
                        for u in rcpts:
                            new = sorted(set(self.names(u)) - set(before[u]))
                            self.assertEqual(len(new), 1, new)
                            with open(os.path.join(self.s.maildir(u), new[0]), 'rb') as f:
                                self.assertEqual(msgid(f.read()), ids[0])

    # -- IMAP APPEND, COPY, MOVE --------------------------------------------------

    def test_append(self):
        for point, _ in APPEND_POINTS:
            for err in ERRNOS:
                with self.subTest(point=point, errno=errno.errorcode[err]):
                    before = self.state()
                    c = self.imap()
                    with self.fault(point, err):
                        typ, data = c.append('INBOX', r'(\Seen)', None, make_message('a', msgid=self.new_id()))
                        self.assertEqual(typ, 'NO', data)
                    self.assertEqual(self.state(), before)
                    typ, data = c.append('INBOX', r'(\Seen)', None, make_message('a', msgid=self.new_id()))
                    self.assertEqual(typ, 'OK', data)
                    c.logout()
                    self.assertEqual(len(self.state()['INBOX'][1][1]), len(before['INBOX'][1][1]) + 1)

    def copy_or_move(self, command, points):
        for point, _ in points:
            for err in ERRNOS:
                with self.subTest(command=command, point=point, errno=errno.errorcode[err]):
                    self.deliver([ALICE], 2)
                    before = self.state(folders=('INBOX', 'Archive'))
                    n_inbox = len(before['INBOX'][1][1])
                    c = self.imap(select='INBOX')
                    with self.fault(point, err):
                        typ, data = c._simple_command(command, '%d:%d' % (n_inbox - 1, n_inbox), 'Archive')
                        self.assertEqual(typ, 'NO', data)
                    c.logout()
                    self.assertEqual(self.state(folders=('INBOX', 'Archive')), before)
                    c = self.imap(select='INBOX')
                    typ, data = c._simple_command(command, '%d:%d' % (n_inbox - 1, n_inbox), 'Archive')
                    self.assertEqual(typ, 'OK', data)
                    c.logout()
                    after = self.state(folders=('INBOX', 'Archive'))
                    self.assertEqual(len(after['Archive'][1][1]), len(before['Archive'][1][1]) + 2)
                    self.assertEqual(len(after['INBOX'][1][1]), n_inbox - (2 if command == 'MOVE' else 0))

    def test_copy(self):
        self.copy_or_move('COPY', COPY_POINTS)

    def test_move(self):
        self.copy_or_move('MOVE', MOVE_POINTS)

    # -- IMAP EXPUNGE and STORE ------------------------------------------------------

    def test_expunge(self):
        for point, expect in EXPUNGE_POINTS:
            for err in ERRNOS:
                with self.subTest(point=point, errno=errno.errorcode[err]):
                    ids = self.deliver([ALICE], 2)
                    c = self.imap(select='INBOX')
                    n = int(c.select('INBOX')[1][0])
                    self.assertEqual(c.store('%d:%d' % (n - 1, n), '+FLAGS', r'(\Deleted)')[0], 'OK')
                    before = self.state()
                    with self.fault(point, err):
                        typ, data = c.expunge()
                    c.logout()
                    after = self.state()
                    v0, msgs0 = before['INBOX'][1]
                    kept = (v0, [m for m in msgs0 if m[2] not in ids])
                    if expect == 'fail':
                        self.assertEqual(typ, 'NO', data)
                        self.assertEqual(after, before)
                    else:
                        self.assertEqual(typ, 'NO' if expect == 'undurable' else 'OK', data)
                        self.assertEqual(after['INBOX'][1], kept)
                        self.assertEqual(len(after['INBOX'][0]), len(before['INBOX'][0]) - 2)
                    # Without the fault: the rest goes, and the index agrees.
                    c = self.imap(select='INBOX')
                    self.assertEqual(c.expunge()[0], 'OK')
                    c.logout()
                    self.assertEqual(self.view(), kept)

    def store_case(self, points, flags, files_change):
        for point, expect in points:
            for err in ERRNOS:
                with self.subTest(flags=flags, point=point, errno=errno.errorcode[err]):
                    self.deliver([ALICE], 2)
                    c = self.imap(select='INBOX')
                    n = int(c.select('INBOX')[1][0])
                    before = self.state()
                    with self.fault(point, err):
                        typ, data = c.store('%d:%d' % (n - 1, n), '+FLAGS', flags)
                    after = self.state()
                    if expect == 'fail':
                        self.assertEqual(typ, 'NO', data)
                        self.assertEqual(after, before)
                    else:
                        self.assertEqual(typ, 'OK', data)
                        self.assertNotEqual(after['INBOX'][0], before['INBOX'][0])
                        v, msgs = after['INBOX'][1]
                        self.assertEqual(v, before['INBOX'][1][0])
                        self.assertTrue(all(r'\Flagged' in m[1] for m in msgs[-2:]), msgs[-2:])
                    typ, data = c.store('%d:%d' % (n - 1, n), '+FLAGS', flags)
                    self.assertEqual(typ, 'OK', data)
                    c.logout()
                    want = flags.strip('()')
                    self.assertTrue(all(want in m[1] for m in self.view()[1][-2:]))

    def test_store(self):
        self.store_case(STORE_POINTS, r'(\Flagged)', True)

    def test_store_keyword(self):
        self.store_case(KEYWORD_POINTS, '(Work)', False)

    # -- POP3 DELE + QUIT ------------------------------------------------------------

    def test_pop3_dele(self):
        for point, expect in POP3_POINTS:
            for err in ERRNOS:
                with self.subTest(point=point, errno=errno.errorcode[err]):
                    ids = self.deliver([BOB], 1)
                    before = self.names(BOB)
                    p = poplib.POP3(*self.s.addr('pop'), timeout=scaled(20))
                    p.user(BOB)
                    p.pass_(PASSWORD)
                    count = p.stat()[0]
                    p.dele(count)
                    with self.fault(point, err):
                        if expect == 'done':
                            self.assertTrue(p.quit().startswith(b'+OK'))
                        else:
                            with self.assertRaises(poplib.error_proto):
                                p.quit()
                            p.close()
                    after = self.names(BOB)
                    if expect == 'fail':
                        self.assertEqual(after, before)
                    else:
                        self.assertEqual(len(after), len(before) - 1)
                        self.assertNotIn(ids[0], [msgid(m) for m in self.s.messages(BOB, 'cur') +
                                                  self.s.messages(BOB, 'new')])
                    p = poplib.POP3(*self.s.addr('pop'), timeout=scaled(20))
                    p.user(BOB)
                    p.pass_(PASSWORD)
                    n = p.stat()[0]
                    self.assertEqual(n, len(after))
                    if expect == 'fail':
                        p.dele(n)
                    self.assertTrue(p.quit().startswith(b'+OK'))
                    self.assertEqual(len(self.names(BOB)), len(before) - 1)

    # -- a failed fsync is never retried into a success ---------------------------------

    def test_fsync_not_retried(self):
        """The fault hits one call only: a server that tried the fsync again
        would succeed and answer 250 / OK for data the kernel may have lost."""
        for point in ('storage/maildir/fsync', 'storage/maildir/fsync-dir'):
            with self.subTest(point=point):
                before = self.names(ALICE)
                with self.fault(point, errno.EIO, onetime=True):
                    with self.assertRaises(smtplib.SMTPDataError) as cm:
                        self.deliver([ALICE])
                    self.assertEqual(cm.exception.smtp_code, 451)
                self.assertEqual(self.names(ALICE), before)
        for point in ('storage/mailbox-save/fsync', 'storage/mailbox-save/fsync-dir'):
            with self.subTest(point=point):
                before = self.state()
                c = self.imap()
                with self.fault(point, errno.EIO, onetime=True):
                    typ, data = c.append('INBOX', None, None, make_message('a', msgid=self.new_id()))
                c.logout()
                self.assertEqual(typ, 'NO', data)
                self.assertEqual(self.state(), before)


if __name__ == '__main__':
    unittest.main()
