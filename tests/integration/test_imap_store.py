"""IMAP STORE, COPY and MOVE (issue 4): RFC 3501 6.4.6/6.4.7, RFC 4315
COPYUID, RFC 6851 MOVE, RFC 7162 UNCHANGEDSINCE/MODIFIED, against the real
binary with Python's imaplib (every line it reads is recorded, so replies are
compared line for line) and a raw socket for IDLE.

Messages come in by SMTP (smtplib) or as files dropped into the Maildir's
new/ before SELECT, as another Maildir writer would do. What is checked on
disk: the ":2," info of the file names and the copies in the destination
folders.
"""

import imaplib
import os
import re
import smtplib
import time
import unittest

from buzon_test import ALICE, as_service_user, IMAP_LISTENERS, PASSWORD, BuzonTestCase, make_message, scaled

BOB = 'bob@example.test'
SENDER = 'sender@client.example.org'
SYSTEM = r'\Answered \Flagged \Deleted \Seen \Draft'


class RecIMAP(imaplib.IMAP4):
    """imaplib with a record of every line the server sent (CRLF checked by imaplib)."""

    def __init__(self, host, port, timeout):
        self.rec = []
        super().__init__(host, port, timeout=timeout)

    def _get_line(self):
        line = super()._get_line()
        self.rec.append(line.decode('utf-8', 'replace'))
        return line

    def run(self, name, *args):
        """Runs a command; returns (status, untagged lines, tagged text without the tag)."""
        start = len(self.rec)
        # imaplib's own state checks and its READ-ONLY bookkeeping know
        # nothing of commands sent this way: the server is the judge here.
        allowed = imaplib.Commands.get(name, ('SELECTED',))
        self.state = 'SELECTED' if 'SELECTED' in allowed else allowed[-1]
        self.untagged_responses.clear()
        try:
            typ, _ = self._simple_command(name, *args)
        except self.error:
            typ = 'BAD'
        lines = self.rec[start:]
        tag, _, text = lines[-1].partition(' ')
        self.assertion_tag = tag
        return typ, lines[:-1], text


def apply_expunges(uids, lines):
    """Applies "* n EXPUNGE" lines to a list of UIDs as a client would."""
    uids = list(uids)
    for l in lines:
        m = re.match(r'^\* (\d+) EXPUNGE$', l)
        if m:
            n = int(m.group(1))
            assert 1 <= n <= len(uids), (l, uids)
            del uids[n - 1]
    return uids


class StoreCase(BuzonTestCase):

    def setUp(self):
        super().setUp()
        self.counter = 0

    def imap_server(self, start=True):
        return self.new_server(start=start, users=('alice', 'bob'), listeners=IMAP_LISTENERS)

    def drop(self, s, count, user=ALICE, folder=None, size=None):
        """Writes count messages into new/ as another Maildir writer would;
        returns their base names in UID order."""
        names = []
        for _ in range(count):
            self.counter += 1
            base = '1764000000.M%06dP4242Q%d.drop' % (self.counter, self.counter)
            body = b'line of text\n' * (size // 13 if size else 2)
            data = (b'From: a@example.org\nTo: alice@example.test\nSubject: m%d\n'
                    b'Message-ID: <%d@drop>\n\n' % (self.counter, self.counter)) + body
            d = s.maildir(user, folder)
            with open(os.path.join(d, 'tmp', base), 'wb') as f:
                f.write(data)
            as_service_user(os.path.join(d, 'tmp', base))
            os.rename(os.path.join(d, 'tmp', base), os.path.join(d, 'new', base))
            names.append(base)
        return names

    def send_smtp(self, s, count, rcpt=ALICE):
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(30)) as c:
            for i in range(count):
                self.assertEqual(c.sendmail(SENDER, [rcpt], make_message(subject='smtp %d' % i)), {})

    def login(self, s, user=ALICE):
        host, port = s.addr('imap')
        c = RecIMAP(host, port, timeout=scaled(30))
        self.addCleanup(self._logout, c)
        typ, _ = c.login(user, PASSWORD)
        self.assertEqual(typ, 'OK')
        return c

    @staticmethod
    def _logout(c):
        try:
            c.logout()
        except Exception:
            try:
                c.shutdown()
            except Exception:
                pass

    def select(self, c, box='INBOX', *params):
        typ, lines, tagged = c.run('SELECT', box, *params)
        self.assertEqual(typ, 'OK', (lines, tagged))
        return lines

    def raw(self, s, user=ALICE):
        c = s.connect_imap()
        self.addCleanup(c.close)
        _, t = c.cmd('LOGIN %s "%s"' % (user, PASSWORD))
        self.assertTrue(t.startswith('OK'), t)
        return c

    def file_of(self, s, base, user=ALICE, folder=None):
        """The name (sub/name) of the file with that base in the folder."""
        d = s.maildir(user, folder)
        found = []
        for sub in ('new', 'cur'):
            for n in os.listdir(os.path.join(d, sub)):
                if n == base or n.startswith(base + ':'):
                    found.append(sub + '/' + n)
        self.assertEqual(len(found), 1, found)
        return found[0]

    def files(self, s, user=ALICE, folder=None):
        d = s.maildir(user, folder)
        return sorted(os.listdir(os.path.join(d, 'new')) + os.listdir(os.path.join(d, 'cur')))

    def uid_map(self, c):
        """{seq: uid} of the selected mailbox, read with a UID STORE that changes nothing."""
        typ, lines, tagged = c.run('UID', 'STORE', '1:*', '+FLAGS', '()')
        self.assertEqual(typ, 'OK', (lines, tagged))
        out = {}
        for l in lines:
            m = re.match(r'^\* (\d+) FETCH \(.*\bUID (\d+)\b', l)
            if m:
                out[int(m.group(1))] = int(m.group(2))
        return out

    def select_value(self, lines, code):
        for l in lines:
            m = re.match(r'^\* OK \[%s (\d+)\]' % code, l)
            if m:
                return int(m.group(1))
        self.fail('no %s in %r' % (code, lines))


class TestStore(StoreCase):

    def test_store_forms_and_file_names(self):
        s = self.imap_server()
        names = self.drop(s, 3)
        c = self.login(s)
        self.select(c)
        uid = self.uid_map(c)
        self.assertEqual(sorted(uid), [1, 2, 3])

        cases = [
            (('1', 'FLAGS', r'(\Seen)'), [r'* 1 FETCH (FLAGS (\Seen \Recent))']),
            (('1', '+FLAGS', r'(\Flagged \Answered)'), [r'* 1 FETCH (FLAGS (\Answered \Flagged \Seen \Recent))']),
            # flags without parentheses, any case
            (('1', '-flags', r'\answered'), [r'* 1 FETCH (FLAGS (\Flagged \Seen \Recent))']),
            (('2:3', '+FLAGS', r'\Draft \Seen'),
             [r'* 2 FETCH (FLAGS (\Seen \Draft \Recent))', r'* 3 FETCH (FLAGS (\Seen \Draft \Recent))']),
            (('2', 'FLAGS', '()'), [r'* 2 FETCH (FLAGS (\Recent))']),
            # unchanged flags still answer with the flags
            (('2', '-FLAGS', r'(\Seen)'), [r'* 2 FETCH (FLAGS (\Recent))']),
            (('1:3', 'FLAGS.SILENT', r'(\Deleted)'), []),
            (('1:*', '-FLAGS.SILENT', r'(\Deleted)'), []),
            (('2', '+FLAGS.SILENT', r'(\Seen)'), []),
            (('3,1', '+FLAGS', r'(\Flagged)'),
             [r'* 1 FETCH (FLAGS (\Flagged \Recent))', r'* 3 FETCH (FLAGS (\Flagged \Recent))']),
        ]
        for args, want in cases:
            typ, lines, tagged = c.run('STORE', *args)
            self.assertEqual((typ, lines, tagged), ('OK', want, 'OK Store completed'), args)
        # UID STORE: UID in every FETCH
        typ, lines, tagged = c.run('UID', 'STORE', '%d' % uid[2], '+FLAGS', r'(\Answered)')
        self.assertEqual(lines, [r'* 2 FETCH (FLAGS (\Answered \Seen \Recent) UID %d)' % uid[2]])
        self.assertEqual(tagged, 'OK Store completed')
        typ, lines, tagged = c.run('UID', 'STORE', '%d:*' % uid[2], 'FLAGS.SILENT', r'(\Seen \Draft)')
        self.assertEqual((typ, lines), ('OK', []))
        # a UID set that matches nothing is no error
        typ, lines, tagged = c.run('UID', 'STORE', '999', '+FLAGS', r'(\Seen)')
        self.assertEqual((typ, lines, tagged), ('OK', [], 'OK Store completed'))

        # the Maildir file names carry the flags (":2," info, letters sorted)
        self.assertEqual(self.file_of(s, names[0]), 'cur/%s:2,F' % names[0])
        self.assertEqual(self.file_of(s, names[1]), 'cur/%s:2,DS' % names[1])
        self.assertEqual(self.file_of(s, names[2]), 'cur/%s:2,DS' % names[2])
        c.run('STORE', '1', 'FLAGS', r'(\Seen \Answered \Flagged \Deleted \Draft)')
        self.assertEqual(self.file_of(s, names[0]), 'cur/%s:2,DFRST' % names[0])

        # a new session (no \Recent any more) sees the stored flags
        c2 = self.login(s)
        self.select(c2)
        typ, lines, _ = c2.run('STORE', '1:3', '+FLAGS', '()')
        self.assertEqual(lines, [r'* 1 FETCH (FLAGS (\Answered \Flagged \Deleted \Seen \Draft))',
                                 r'* 2 FETCH (FLAGS (\Seen \Draft))',
                                 r'* 3 FETCH (FLAGS (\Seen \Draft))'])

    def test_store_errors(self):
        s = self.imap_server()
        self.drop(s, 2)
        c = self.login(s)
        typ, lines, tagged = c.run('STORE', '1', '+FLAGS', r'(\Seen)')
        self.assertEqual(typ, 'BAD')   # not selected
        self.select(c)
        for args in [('1', 'FLAGS', r'(\Recent)'), ('1', '+FLAGS', r'\Seen \Recent'),
                     ('1', 'FLAGS', r'(\Bogus)'), ('1', 'BOGUS', r'(\Seen)'), ('1', 'FLAGS'),
                     ('1', 'FLAGS.LOUD', r'(\Seen)'), ('3', 'FLAGS', r'(\Seen)'), ('0', 'FLAGS', r'(\Seen)'),
                     ('x', 'FLAGS', r'(\Seen)'), ('1', '(UNCHANGEDSINCE)', 'FLAGS', r'(\Seen)'),
                     ('1', '(FOO 1)', 'FLAGS', r'(\Seen)'), ('1', 'FLAGS', r'(\Seen (x))')]:
            typ, lines, tagged = c.run('STORE', *args)
            self.assertEqual(typ, 'BAD', (args, lines, tagged))
            self.assertEqual(lines, [], args)
        # nothing was changed by the bad commands
        typ, lines, _ = c.run('STORE', '1:2', '+FLAGS', '()')
        self.assertEqual(lines, [r'* 1 FETCH (FLAGS (\Recent))', r'* 2 FETCH (FLAGS (\Recent))'])
        # read-only: NO, and nothing changes
        c.run('EXAMINE', 'INBOX')
        for cmd in (('STORE', '1', '+FLAGS', r'(\Seen)'), ('UID', 'STORE', '1', '+FLAGS', r'(\Seen)')):
            typ, lines, tagged = c.run(*cmd)
            self.assertEqual(typ, 'NO', cmd)
            self.assertEqual(tagged, 'NO [READ-ONLY] Mailbox is read-only')
        self.assertFalse(any(':2,S' in f for f in self.files(s)), self.files(s))

    def test_keywords(self):
        s = self.imap_server()
        names = self.drop(s, 2)
        c = self.login(s)
        lines = self.select(c)
        self.assertIn('* FLAGS (%s)' % SYSTEM, lines)
        typ, lines, tagged = c.run('STORE', '1', '+FLAGS', r'($Forwarded Work \Seen)')
        self.assertEqual(lines, [
            '* FLAGS (%s $Forwarded Work)' % SYSTEM,
            r'* OK [PERMANENTFLAGS (%s $Forwarded Work \*)] Flags permitted' % SYSTEM,
            r'* 1 FETCH (FLAGS (\Seen \Recent $Forwarded Work))',
        ])
        self.assertEqual(tagged, 'OK Store completed')
        # known keywords (in any case) are no news; they keep their spelling
        typ, lines, _ = c.run('STORE', '2', '+FLAGS', '(work $forwarded)')
        self.assertEqual(lines, [r'* 2 FETCH (FLAGS (\Recent Work $Forwarded))'])
        typ, lines, _ = c.run('STORE', '2', '+FLAGS', '(Work)')
        self.assertEqual(lines, [r'* 2 FETCH (FLAGS (\Recent Work $Forwarded))'])
        typ, lines, _ = c.run('STORE', '2', '-FLAGS', '(WORK)')
        self.assertEqual(lines, [r'* 2 FETCH (FLAGS (\Recent $Forwarded))'])
        # FLAGS replaces keywords too; a second new keyword is announced
        typ, lines, _ = c.run('STORE', '2', 'FLAGS', r'(Later \Flagged)')
        self.assertEqual(lines, [
            '* FLAGS (%s $Forwarded Work Later)' % SYSTEM,
            r'* OK [PERMANENTFLAGS (%s $Forwarded Work Later \*)] Flags permitted' % SYSTEM,
            r'* 2 FETCH (FLAGS (\Flagged \Recent Later))',
        ])
        # .SILENT: the announcement still comes, no FETCH
        typ, lines, _ = c.run('STORE', '1', '+FLAGS.SILENT', '(Urgent)')
        self.assertEqual(lines, [
            '* FLAGS (%s $Forwarded Work Later Urgent)' % SYSTEM,
            r'* OK [PERMANENTFLAGS (%s $Forwarded Work Later Urgent \*)] Flags permitted' % SYSTEM,
        ])
        # keywords are not Maildir info letters: the names carry the system flags only
        self.assertEqual(self.file_of(s, names[0]), 'cur/%s:2,S' % names[0])
        self.assertEqual(self.file_of(s, names[1]), 'cur/%s:2,F' % names[1])

        # persisted: a new session, and after a restart, lists and keeps them
        for restart in (False, True):
            if restart:
                s.stop()
                s.start()
            c2 = self.login(s)
            lines = self.select(c2)
            self.assertIn('* FLAGS (%s $Forwarded Work Urgent Later)' % SYSTEM, lines)
            self.assertIn(r'* OK [PERMANENTFLAGS (%s $Forwarded Work Urgent Later \*)] Flags permitted' % SYSTEM,
                          lines)
            typ, lines, _ = c2.run('STORE', '1:2', '+FLAGS', '()')
            self.assertEqual(lines, [r'* 1 FETCH (FLAGS (\Seen $Forwarded Work Urgent))',
                                     r'* 2 FETCH (FLAGS (\Flagged Later))'])
            c2.logout()

    def test_unchangedsince(self):
        s = self.imap_server()
        self.drop(s, 3)
        c = self.login(s)
        lines = self.select(c, 'INBOX', '(CONDSTORE)')
        high = self.select_value(lines, 'HIGHESTMODSEQ')
        typ, lines, _ = c.run('STORE', '1', '+FLAGS', r'(\Seen)')
        self.assertEqual(len(lines), 1)
        m = re.match(r'^\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) MODSEQ \((\d+)\) UID 1\)$', lines[0])
        self.assertTrue(m, lines)
        m1 = int(m.group(1))
        self.assertGreater(m1, high)
        # message 1 changed after "high": not stored, listed in MODIFIED
        typ, lines, tagged = c.run('STORE', '1:3', '(UNCHANGEDSINCE %d)' % high, '+FLAGS', r'(\Flagged)')
        self.assertEqual(tagged, 'OK [MODIFIED 1] Conditional STORE failed')
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], r'^\* 2 FETCH \(FLAGS \(\\Flagged \\Recent\) MODSEQ \((\d+)\) UID 2\)$')
        self.assertRegex(lines[1], r'^\* 3 FETCH \(FLAGS \(\\Flagged \\Recent\) MODSEQ \((\d+)\) UID 3\)$')
        m3 = int(re.search(r'MODSEQ \((\d+)\)', lines[1]).group(1))
        # UID STORE: MODIFIED holds UIDs; .SILENT still sends MODSEQ (RFC 7162 3.1.3)
        typ, lines, tagged = c.run('UID', 'STORE', '1:3', '(UNCHANGEDSINCE %d)' % m1, '-FLAGS.SILENT', r'(\Flagged)')
        self.assertEqual(tagged, 'OK [MODIFIED 2:3] Conditional STORE failed')
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r'^\* 1 FETCH \(MODSEQ \((\d+)\) UID 1\)$')
        # UNCHANGEDSINCE 0 always fails
        typ, lines, tagged = c.run('STORE', '1:3', '(UNCHANGEDSINCE 0)', 'FLAGS', '()')
        self.assertEqual((lines, tagged), ([], 'OK [MODIFIED 1:3] Conditional STORE failed'))
        # the current modseq passes
        typ, lines, tagged = c.run('STORE', '3', '(UNCHANGEDSINCE %d)' % m3, 'FLAGS', r'(\Answered)')
        self.assertEqual(tagged, 'OK Store completed')
        self.assertRegex(lines[0], r'^\* 3 FETCH \(FLAGS \(\\Answered \\Recent\) MODSEQ \((\d+)\) UID 3\)$')
        self.assertEqual(len(self.files(s)), 3)

    def test_unchangedsince_enables_condstore(self):
        s = self.imap_server()
        self.drop(s, 1)
        c = self.login(s)
        lines = self.select(c)
        high = self.select_value(lines, 'HIGHESTMODSEQ')
        typ, lines, tagged = c.run('STORE', '1', '(UNCHANGEDSINCE %d)' % high, '+FLAGS', r'(\Seen)')
        self.assertEqual(tagged, 'OK Store completed')
        self.assertEqual(lines[0], '* OK [HIGHESTMODSEQ %d] Highest' % high)
        self.assertRegex(lines[1], r'^\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) MODSEQ \(\d+\) UID 1\)$')
        self.assertEqual(len(lines), 2)
        # from now on every STORE reply carries MODSEQ and UID
        typ, lines, _ = c.run('STORE', '1', '-FLAGS', r'(\Seen)')
        self.assertRegex(lines[0], r'^\* 1 FETCH \(FLAGS \(\\Recent\) MODSEQ \(\d+\) UID 1\)$')

    def test_smtp_delivered(self):
        s = self.imap_server()
        self.send_smtp(s, 2)
        c = self.login(s)
        self.select(c)
        typ, lines, _ = c.run('STORE', '2', '+FLAGS', r'(\Seen \Answered)')
        self.assertEqual(lines, [r'* 2 FETCH (FLAGS (\Answered \Seen \Recent))'])
        files = self.files(s)
        self.assertEqual(len(files), 2)
        self.assertEqual(sum(1 for f in files if f.endswith(':2,RS')), 1, files)


class TestCopyMove(StoreCase):

    def test_copy(self):
        s = self.imap_server()
        self.drop(s, 3)
        c = self.login(s)
        self.select(c)
        c.run('STORE', '2', '+FLAGS.SILENT', r'(\Flagged Work)')
        lines = self.select(c, 'Archive')
        v_archive = self.select_value(lines, 'UIDVALIDITY')
        self.assertIn('* 0 EXISTS', lines)
        self.select(c)

        typ, lines, tagged = c.run('COPY', '2:3', 'Archive')
        self.assertEqual((typ, lines), ('OK', []))
        self.assertEqual(tagged, 'OK [COPYUID %d 2:3 1:2] Copy completed' % v_archive)
        typ, lines, tagged = c.run('UID', 'COPY', '1,3', 'Archive')
        self.assertEqual(tagged, 'OK [COPYUID %d 1,3 3:4] Copy completed' % v_archive)
        typ, lines, tagged = c.run('COPY', '1', 'archive')   # not INBOX: names are case-sensitive
        self.assertEqual(tagged, "NO [TRYCREATE] Mailbox doesn't exist: archive")
        # UIDs that match nothing: nothing to copy, no COPYUID
        typ, lines, tagged = c.run('UID', 'COPY', '100:200', 'Archive')
        self.assertEqual((typ, lines, tagged), ('OK', [], 'OK No messages found'))
        # the source is untouched
        typ, lines, _ = c.run('NOOP')
        self.assertEqual(lines, [])
        self.assertEqual(len(self.files(s)), 3)

        # the destination: the UIDs of COPYUID hold the copies, flags and keywords kept
        af = self.files(s, folder='Archive')
        self.assertEqual(len(af), 4, af)
        self.assertEqual(sum(1 for f in af if f.endswith(':2,F')), 1, af)
        lines = self.select(c, 'Archive')
        self.assertIn('* 4 EXISTS', lines)
        self.assertEqual(self.select_value(lines, 'UIDVALIDITY'), v_archive)
        self.assertEqual(self.select_value(lines, 'UIDNEXT'), 5)
        typ, lines, _ = c.run('UID', 'STORE', '1:4', '+FLAGS', '()')
        self.assertEqual(lines, [r'* 1 FETCH (FLAGS (\Flagged \Recent Work) UID 1)',
                                 r'* 2 FETCH (FLAGS (\Recent) UID 2)',
                                 r'* 3 FETCH (FLAGS (\Recent) UID 3)',
                                 r'* 4 FETCH (FLAGS (\Recent) UID 4)'])

        # COPY into the selected mailbox: the copy shows up at once
        typ, lines, tagged = c.run('COPY', '1', 'Archive')
        self.assertEqual(tagged, 'OK [COPYUID %d 1 5] Copy completed' % v_archive)
        self.assertIn('* 5 EXISTS', lines)

        # COPY from a read-only mailbox is fine
        c.run('EXAMINE', 'INBOX')
        typ, lines, tagged = c.run('COPY', '1', 'Trash')
        self.assertRegex(tagged, r'^OK \[COPYUID \d+ 1 1\] Copy completed$')

    def test_copy_errors(self):
        s = self.imap_server()
        self.drop(s, 2)
        c = self.login(s)
        typ, _, _ = c.run('COPY', '1', 'Trash')
        self.assertEqual(typ, 'BAD')   # not selected
        self.select(c)
        for args in [('3', 'Trash'), ('1',), ('1', 'Trash', 'extra'), ('x', 'Trash')]:
            typ, lines, tagged = c.run('COPY', *args)
            self.assertEqual(typ, 'BAD', (args, tagged))
        typ, lines, tagged = c.run('COPY', '1', 'Nope')
        self.assertEqual((typ, tagged), ('NO', "NO [TRYCREATE] Mailbox doesn't exist: Nope"))
        typ, lines, tagged = c.run('MOVE', '1', 'Nope')
        self.assertEqual((typ, tagged), ('NO', "NO [TRYCREATE] Mailbox doesn't exist: Nope"))
        self.assertEqual(lines, [])
        for bad in ('../x', 'a..b', '.hidden'):
            typ, lines, tagged = c.run('COPY', '1', '"%s"' % bad)
            self.assertEqual((typ, tagged), ('NO', 'NO [CANNOT] Invalid mailbox name'), bad)
        self.assertEqual(len(self.files(s)), 2)
        self.assertEqual(self.files(s, folder='Trash'), [])

    def test_copy_over_quota(self):
        s = self.imap_server()
        self.drop(s, 3, size=1000)
        s.cli_ok('user', 'quota', ALICE, '4500')
        c = self.login(s)
        self.select(c)
        typ, lines, tagged = c.run('COPY', '1', 'Trash')        # ~3100 + ~1050 fits
        self.assertEqual(typ, 'OK', tagged)
        typ, lines, tagged = c.run('COPY', '1:2', 'Trash')      # would pass 4500
        self.assertEqual((typ, tagged), ('NO', 'NO [OVERQUOTA] Quota exceeded'))
        self.assertEqual(len(self.files(s, folder='Trash')), 1)   # all or nothing
        # MOVE takes no more room: allowed even at the limit
        typ, lines, tagged = c.run('MOVE', '2', 'Trash')
        self.assertEqual(typ, 'OK', tagged)
        self.assertEqual(len(self.files(s, folder='Trash')), 2)
        self.assertEqual(len(self.files(s)), 2)

    def test_move(self):
        s = self.imap_server()
        self.drop(s, 5)
        c = self.login(s)
        self.select(c)
        v_trash = self.select_value(self.select(c, 'Trash'), 'UIDVALIDITY')
        self.select(c)
        c.run('STORE', '4', '+FLAGS.SILENT', r'(\Seen)')
        typ, lines, tagged = c.run('MOVE', '2,4', 'Trash')
        self.assertEqual((typ, tagged), ('OK', 'OK Move completed'))
        self.assertEqual(lines[0], '* OK [COPYUID %d 2,4 1:2] Moved UIDs' % v_trash)
        expunges = [l for l in lines[1:] if l.endswith(' EXPUNGE')]
        self.assertEqual(len(expunges), 2, lines)
        self.assertEqual(apply_expunges([1, 2, 3, 4, 5], expunges), [1, 3, 5])
        for l in lines[1:]:
            self.assertRegex(l, r'^\* \d+ EXPUNGE$')
        self.assertEqual(self.uid_map(c), {1: 1, 2: 3, 3: 5})

        typ, lines, tagged = c.run('UID', 'MOVE', '5', 'Trash')
        self.assertEqual((typ, tagged), ('OK', 'OK Move completed'))
        self.assertEqual(lines[0], '* OK [COPYUID %d 5 3] Moved UIDs' % v_trash)
        self.assertIn('* 3 EXPUNGE', lines)
        self.assertEqual(self.uid_map(c), {1: 1, 2: 3})
        typ, lines, tagged = c.run('UID', 'MOVE', '5', 'Trash')      # gone: nothing to do
        self.assertEqual((typ, lines, tagged), ('OK', [], 'OK No messages found'))
        self.assertEqual(len(self.files(s)), 2)
        tf = self.files(s, folder='Trash')
        self.assertEqual(len(tf), 3)
        self.assertEqual(sum(1 for f in tf if f.endswith(':2,S')), 1, tf)

        # MOVE within the mailbox: the copy arrives, the original goes
        typ, lines, tagged = c.run('MOVE', '1', 'INBOX')
        self.assertEqual(tagged, 'OK Move completed')
        self.assertRegex(lines[0], r'^\* OK \[COPYUID \d+ 1 6\] Moved UIDs$')
        self.assertIn('* 1 EXPUNGE', lines)
        self.assertIn('* 2 EXISTS', lines)
        self.assertEqual(self.uid_map(c), {1: 3, 2: 6})

        # read-only: no MOVE
        c.run('EXAMINE', 'INBOX')
        typ, lines, tagged = c.run('MOVE', '1', 'Trash')
        self.assertEqual((typ, tagged), ('NO', 'NO [READ-ONLY] Mailbox is read-only'))
        self.assertEqual(len(self.files(s)), 2)

        lines = self.select(c, 'Trash')
        self.assertIn('* 3 EXISTS', lines)
        self.assertEqual(self.uid_map(c), {1: 1, 2: 2, 3: 3})

    def test_move_qresync(self):
        s = self.imap_server()
        self.drop(s, 4)
        c = self.login(s)
        typ, lines, _ = c.run('ENABLE', 'QRESYNC')
        self.assertIn('* ENABLED QRESYNC', lines)
        self.select(c)
        typ, lines, tagged = c.run('UID', 'MOVE', '2:3', 'Junk')
        self.assertEqual(tagged, 'OK Move completed')
        self.assertRegex(lines[0], r'^\* OK \[COPYUID \d+ 2:3 1:2\] Moved UIDs$')
        self.assertIn('* VANISHED 2:3', lines)
        self.assertFalse(any(l.endswith('EXPUNGE') for l in lines), lines)


class TestSessions(StoreCase):

    def test_new_keyword_reaches_other_sessions(self):
        # RFC 3501 7.2.6: a keyword another session starts using comes as FLAGS
        # (and, read-write, PERMANENTFLAGS) before a FETCH carries it; once.
        s = self.imap_server()
        self.drop(s, 2)
        a = self.login(s)
        b = self.login(s)
        c = self.login(s)
        self.select(a)
        self.select(b)
        typ, _, tagged = c.run('EXAMINE', 'INBOX')
        self.assertEqual(typ, 'OK', tagged)
        a.run('STORE', '2', '+FLAGS', '(Project-X)')
        flags = r'\Answered \Flagged \Deleted \Seen \Draft Project-X'
        typ, lines, _ = b.run('NOOP')
        self.assertEqual(lines, ['* FLAGS (%s)' % flags,
                                 r'* OK [PERMANENTFLAGS (%s \*)] Flags permitted' % flags,
                                 '* 2 FETCH (FLAGS (Project-X) UID 2)'])
        typ, lines, _ = c.run('NOOP')
        self.assertEqual(lines, ['* FLAGS (%s)' % flags, '* 2 FETCH (FLAGS (Project-X) UID 2)'])
        # a keyword already told is not told again; one more is
        a.run('STORE', '1', '+FLAGS', '(project-x Later)')
        typ, lines, _ = b.run('NOOP')
        self.assertEqual(lines, ['* FLAGS (%s Later)' % flags,
                                 r'* OK [PERMANENTFLAGS (%s Later \*)] Flags permitted' % flags,
                                 '* 1 FETCH (FLAGS (Project-X Later) UID 1)'])
        a.run('STORE', '1', '-FLAGS', '(Later)')
        typ, lines, _ = b.run('NOOP')
        self.assertEqual(lines, ['* 1 FETCH (FLAGS (Project-X) UID 1)'])

    def test_two_sessions(self):
        s = self.imap_server()
        self.drop(s, 4)
        a = self.login(s)
        b = self.login(s)
        self.select(a)        # A holds \Recent
        self.select(b)

        typ, lines, _ = a.run('STORE', '1', '+FLAGS', r'(\Seen)')
        self.assertEqual(lines, [r'* 1 FETCH (FLAGS (\Seen \Recent))'])
        typ, lines, _ = b.run('NOOP')
        self.assertEqual(lines, [r'* 1 FETCH (FLAGS (\Seen) UID 1)'])
        typ, lines, _ = b.run('NOOP')
        self.assertEqual(lines, [])

        # B stores on a message A changed since B last looked: nothing of A's is lost
        a.run('STORE', '3', '+FLAGS', r'(\Answered Todo)')
        typ, lines, _ = b.run('STORE', '3', '+FLAGS', r'(\Flagged)')
        # Todo is new to B: FLAGS and PERMANENTFLAGS come before the FETCH that carries it
        self.assertEqual(lines, [r'* FLAGS (\Answered \Flagged \Deleted \Seen \Draft Todo)',
                                 r'* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft Todo \*)] '
                                 'Flags permitted',
                                 r'* 3 FETCH (FLAGS (\Answered \Flagged Todo))'])
        typ, lines, _ = a.run('NOOP')
        self.assertEqual(lines, [r'* 3 FETCH (FLAGS (\Answered \Flagged \Recent Todo) UID 3)'])

        # UNCHANGEDSINCE compares with what is stored now, not with B's view
        typ, lines, _ = b.run('UID', 'STORE', '4', '(UNCHANGEDSINCE 1000000000)', '+FLAGS', '()')
        m4 = [int(m.group(1)) for m in (re.match(r'^\* 4 FETCH \(FLAGS \(\) MODSEQ \((\d+)\) UID 4\)$', l)
                                        for l in lines) if m]
        self.assertEqual(len(m4), 1, lines)
        m4 = m4[0]
        a.run('STORE', '4', '+FLAGS', r'(\Seen)')
        typ, lines, tagged = b.run('UID', 'STORE', '4', '(UNCHANGEDSINCE %d)' % m4, '+FLAGS', r'(\Deleted)')
        self.assertEqual(tagged, 'OK [MODIFIED 4] Conditional STORE failed')
        self.assertEqual([l for l in lines if 'EXPUNGE' in l], [])

        # a MOVE in A is an EXPUNGE in B at its next NOOP
        typ, lines, tagged = a.run('MOVE', '2', 'Trash')
        self.assertEqual(tagged, 'OK Move completed')
        typ, lines, _ = b.run('NOOP')
        self.assertIn('* 2 EXPUNGE', lines)
        self.assertEqual([l for l in lines if 'EXPUNGE' in l], ['* 2 EXPUNGE'])

        # B stores on a message A has expunged meanwhile: no EXPUNGE during
        # STORE (RFC 3501 7.4.1), EXPUNGEISSUED, then the EXPUNGE at NOOP
        a.run('STORE', '1', '+FLAGS.SILENT', r'(\Deleted)')
        typ, lines, tagged = a.run('EXPUNGE')
        self.assertIn('* 1 EXPUNGE', lines)
        typ, lines, tagged = b.run('STORE', '1', '+FLAGS', r'(\Flagged)')
        self.assertEqual(tagged, 'NO [EXPUNGEISSUED] Some of the requested messages no longer exist')
        self.assertFalse(any('EXPUNGE' in l for l in lines), lines)
        typ, lines, _ = b.run('NOOP')
        self.assertIn('* 1 EXPUNGE', lines)

    def test_idle_hears_store_and_move(self):
        s = self.imap_server()
        self.drop(s, 3)
        a = self.login(s)
        self.select(a)
        b = self.raw(s)
        untagged, tagged = b.cmd('SELECT INBOX')
        self.assertTrue(tagged.startswith('OK'), tagged)
        b.send('i1 IDLE\r\n')
        self.assertTrue(b.line().decode().startswith('+ '))

        b.settimeout(scaled(5))
        t0 = time.monotonic()
        a.run('STORE', '2', '+FLAGS', r'(\Flagged)')
        self.assertEqual(b.line().decode(), r'* 2 FETCH (FLAGS (\Flagged) UID 2)')
        self.assertLess(time.monotonic() - t0, scaled(2))

        a.run('MOVE', '1', 'Trash')
        # EXPUNGE alone: it counts the messages down (RFC 3501 7.4.1)
        self.assertEqual(b.line().decode(), '* 1 EXPUNGE')

        # a COPY into the mailbox B watches: EXISTS (and RECENT) at once
        typ, _, tagged = a.run('COPY', '1', 'INBOX')
        self.assertRegex(tagged, r'^OK \[COPYUID \d+ 2 4\] Copy completed$')
        self.assertEqual(b.line().decode(), '* 3 EXISTS')
        self.assertRegex(b.line().decode(), r'^\* [01] RECENT$')

        b.send('DONE\r\n')
        self.assertEqual(b.line().decode(), 'i1 OK Idle completed')


if __name__ == '__main__':
    unittest.main()
