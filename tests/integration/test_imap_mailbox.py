"""IMAP mailbox management (issue 4): CREATE, DELETE, RENAME, SUBSCRIBE,
UNSUBSCRIBE, LIST (RFC 3501, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
CHILDREN RFC 3348, SPECIAL-USE RFC 6154), LSUB, STATUS and QUOTA (RFC 9208)
against the real binary with Python's imaplib.

One server per test class (starting it per test would cost more than the
tests); every test uses a user of its own, so tests do not see each
other's folders. Replies are compared line by line: the RFCs fix their
form, the order of the attributes is buzon's (Dovecot's) and documented in
imap/imap-cmd-mailbox.c.
"""

import imaplib
import itertools
import os
import re
import smtplib
import unittest

from buzon_test import IMAP_LISTENERS, PASSWORD, Server, make_message, scaled

DOMAIN = 'example.test'
DEFAULTS = [
    r'* LIST (\HasNoChildren) "." INBOX',
    r'* LIST (\HasNoChildren \Archive) "." Archive',
    r'* LIST (\HasNoChildren \Drafts) "." Drafts',
    r'* LIST (\HasNoChildren \Junk) "." Junk',
    r'* LIST (\HasNoChildren \Sent) "." Sent',
    r'* LIST (\HasNoChildren \Trash) "." Trash',
]


class Session:
    """An imaplib connection plus a raw command helper that returns every
    reply line, so that untagged responses can be compared exactly."""

    def __init__(self, addr, user):
        self.M = imaplib.IMAP4(addr[0], addr[1], timeout=scaled(20))
        self.M.login(user, PASSWORD)

    def raw(self, line, literal=None):
        """Sends "tag line" (with a LITERAL+ literal appended when given);
        returns (untagged lines, tagged text without the tag)."""
        M = self.M
        tag = M._new_tag().decode()
        data = ('%s %s' % (tag, line)).encode()
        if literal is not None:
            data += b' {%d+}\r\n' % len(literal) + literal
        M.send(data + b'\r\n')
        out = []
        while True:
            l = M.readline()
            if not l.endswith(b'\r\n'):
                raise AssertionError('reply line without CRLF: %r' % l)
            l = l[:-2].decode('utf-8', 'replace')
            if l.startswith(tag + ' '):
                return out, l[len(tag) + 1:]
            out.append(l)

    def close(self):
        try:
            self.M.logout()
        except Exception:
            pass


class MailboxCase(unittest.TestCase):
    counter = itertools.count(1)

    @classmethod
    def setUpClass(cls):
        s = cls.srv = Server()
        s.write_config(listeners=IMAP_LISTENERS)
        s.add_domain(DOMAIN)
        s.start()

    @classmethod
    def tearDownClass(cls):
        s = cls.srv
        rc = s.stop()
        reports = s.sanitizer_reports()
        s.cleanup()
        if rc != 0 or reports:
            raise AssertionError('server exit %s; sanitizer reports:\n%s' % (rc, '\n'.join(reports)))

    def setUp(self):
        self.sessions = []
        self.addCleanup(self._close)

    def _close(self):
        for s in self.sessions:
            s.close()

    def user(self, quota=None):
        addr = 'mb%d@%s' % (next(self.counter), DOMAIN)
        self.srv.add_user(addr, quota=quota)
        return addr

    def login(self, user):
        s = Session(self.srv.addr('imap'), user)
        self.sessions.append(s)
        return s

    def deliver(self, user, n=1, body=b'hello\r\n'):
        with smtplib.SMTP(*self.srv.addr('mx'), timeout=scaled(20)) as c:
            for i in range(n):
                c.sendmail('sender@client.example.org', [user], make_message('m%d' % i, body=body))

    def maildir(self, user):
        return self.srv.maildir(user)

    def dirs(self):
        """Every directory under the server's temporary directory."""
        out = set()
        for dirpath, dirnames, _ in os.walk(self.srv.tmp):
            for d in dirnames:
                out.add(os.path.relpath(os.path.join(dirpath, d), self.srv.tmp))
        return out

    def assertCmd(self, s, line, untagged, tagged, literal=None):
        got_u, got_t = s.raw(line, literal)
        self.assertEqual(got_u, untagged, line)
        if isinstance(tagged, re.Pattern):
            self.assertRegex(got_t, tagged, line)
        else:
            self.assertEqual(got_t, tagged, line)
        return got_u

    # ---------------------------------------------------------------- LIST

    def test_new_user_folders_special_use(self):
        u = self.user()
        s = self.login(u)
        self.assertCmd(s, 'LIST "" "*"', DEFAULTS, 'OK List completed')
        # imaplib's own LIST parses the same lines
        typ, data = s.M.list()
        self.assertEqual(typ, 'OK')
        self.assertEqual([d.decode() for d in data], [l[len('* LIST '):] for l in DEFAULTS])
        self.assertCmd(s, 'LIST "" ""', [r'* LIST (\Noselect) "." ""'], 'OK List completed')
        self.assertCmd(s, 'LIST (SPECIAL-USE) "" "*"', [
            r'* LIST (\Archive) "." Archive', r'* LIST (\Drafts) "." Drafts', r'* LIST (\Junk) "." Junk',
            r'* LIST (\Sent) "." Sent', r'* LIST (\Trash) "." Trash'], 'OK List completed')
        self.assertCmd(s, 'LIST "" "*" RETURN (SPECIAL-USE)', [
            '* LIST () "." INBOX', r'* LIST (\Archive) "." Archive', r'* LIST (\Drafts) "." Drafts',
            r'* LIST (\Junk) "." Junk', r'* LIST (\Sent) "." Sent', r'* LIST (\Trash) "." Trash'],
            'OK List completed')
        # the default folders are subscribed, INBOX is not
        self.assertCmd(s, 'LSUB "" "*"', ['* LSUB () "." Archive', '* LSUB () "." Drafts', '* LSUB () "." Junk',
                                          '* LSUB () "." Sent', '* LSUB () "." Trash'], 'OK Lsub completed')
        # INBOX in any case, patterns
        self.assertCmd(s, 'LIST "" inbox', [DEFAULTS[0]], 'OK List completed')
        self.assertCmd(s, 'LIST "" "T%"', [DEFAULTS[5]], 'OK List completed')
        self.assertCmd(s, 'LIST "" "*r*"', [DEFAULTS[1], DEFAULTS[2], DEFAULTS[5]], 'OK List completed')
        self.assertCmd(s, 'LIST "" ("Sent" "INBOX" "Sent")', ['* LIST () "." INBOX', '* LIST () "." Sent'],
                       'OK List completed')
        self.assertCmd(s, 'LIST "" nothing', [], 'OK List completed')
        # runs of wildcards mean one; long patterns stay cheap
        self.assertCmd(s, 'LIST "" "%%%T*%*%%h"', [DEFAULTS[5]], 'OK List completed')
        self.assertCmd(s, 'LIST "" "%s"' % ('*%' * 5000 + 'Trash'), [DEFAULTS[5]], 'OK List completed')
        self.assertCmd(s, 'LIST "" "%s"' % ('T*' * 300), [], 'OK List completed')
        self.assertCmd(s, 'LIST "" (%s)' % ' '.join(['"*"'] * 32), [
            '* LIST () "." ' + n for n in ('INBOX', 'Archive', 'Drafts', 'Junk', 'Sent', 'Trash')],
            'OK List completed')
        self.assertCmd(s, 'LIST "" (%s)' % ' '.join(['"*"'] * 33), [], 'BAD Too many patterns')
        self.assertCmd(s, 'LIST "" ()', [], 'BAD Empty pattern list')
        # bad syntax
        self.assertCmd(s, 'LIST (RECURSIVEMATCH) "" "*"', [], re.compile('^BAD '))
        self.assertCmd(s, 'LIST (REMOTE RECURSIVEMATCH) "" "*"', [], re.compile('^BAD '))
        self.assertCmd(s, 'LIST (FOO) "" "*"', [], re.compile('^BAD '))
        self.assertCmd(s, 'LIST "" "*" RETURN (FOO)', [], re.compile('^BAD '))
        self.assertCmd(s, 'LIST "" "*" RETURN (STATUS (FOO))', [], re.compile('^BAD '))
        self.assertCmd(s, 'LIST ""', [], re.compile('^BAD '))
        self.assertCmd(s, 'LSUB (SUBSCRIBED) "" "*"', [], re.compile('^BAD '))

    def test_hierarchy_noselect_parents(self):
        u = self.user()
        s = self.login(u)
        self.assertCmd(s, 'CREATE a.b.c', [], 'OK Create completed')
        md = self.maildir(u)
        self.assertTrue(os.path.isdir(os.path.join(md, '.a.b.c', 'cur')))
        self.assertFalse(os.path.exists(os.path.join(md, '.a')))
        self.assertCmd(s, 'LIST "" "a*"', [
            r'* LIST (\Noselect \HasChildren) "." a', r'* LIST (\Noselect \HasChildren) "." a.b',
            r'* LIST (\HasNoChildren) "." a.b.c'], 'OK List completed')
        self.assertCmd(s, 'LIST "" "%"', DEFAULTS + [r'* LIST (\Noselect \HasChildren) "." a'],
                       'OK List completed')
        self.assertCmd(s, 'LIST "" "a.%"', [r'* LIST (\Noselect \HasChildren) "." a.b'], 'OK List completed')
        self.assertCmd(s, 'LIST "a." "%"', [r'* LIST (\Noselect \HasChildren) "." a.b'], 'OK List completed')
        self.assertCmd(s, 'LIST "a.b." "*"', [r'* LIST (\HasNoChildren) "." a.b.c'], 'OK List completed')
        # LIST-EXTENDED says \NonExistent, and children only when asked for
        self.assertCmd(s, 'LIST () "" "a*" RETURN (CHILDREN)', [
            r'* LIST (\NonExistent \HasChildren) "." a', r'* LIST (\NonExistent \HasChildren) "." a.b',
            r'* LIST (\HasNoChildren) "." a.b.c'], 'OK List completed')
        self.assertCmd(s, 'LIST () "" "a*"', [
            r'* LIST (\NonExistent) "." a', r'* LIST (\NonExistent) "." a.b', r'* LIST () "." a.b.c'],
            'OK List completed')
        # an implicit parent is no mailbox
        self.assertCmd(s, 'SELECT a', [], re.compile(r'^NO \[NONEXISTENT\]'))
        self.assertCmd(s, 'STATUS a (MESSAGES)', [], 'NO [NONEXISTENT] Mailbox doesn\'t exist: a')
        # creating the parent makes it a real mailbox with children
        self.assertCmd(s, 'CREATE a', [], 'OK Create completed')
        self.assertCmd(s, 'LIST "" "a"', [r'* LIST (\HasChildren) "." a'], 'OK List completed')
        # trailing delimiter (RFC 3501 6.3.3)
        self.assertCmd(s, 'CREATE x.y.', [], 'OK Create completed')
        self.assertTrue(os.path.isdir(os.path.join(md, '.x.y', 'cur')))
        self.assertFalse(os.path.exists(os.path.join(md, '.x.y.')))
        self.assertCmd(s, 'CREATE x.y', [], 'NO [ALREADYEXISTS] Mailbox already exists')
        self.assertCmd(s, 'CREATE INBOX', [], 'NO [ALREADYEXISTS] INBOX always exists')
        self.assertCmd(s, 'CREATE inbox', [], 'NO [ALREADYEXISTS] INBOX always exists')
        self.assertCmd(s, 'CREATE Sent', [], 'NO [ALREADYEXISTS] Mailbox already exists')
        # names that need quoting are listed quoted
        self.assertCmd(s, 'CREATE "with space"', [], 'OK Create completed')
        self.assertCmd(s, 'CREATE "q\\"uote"', [], 'OK Create completed')
        self.assertCmd(s, 'LIST "" "w*"', [r'* LIST (\HasNoChildren) "." "with space"'], 'OK List completed')
        self.assertCmd(s, 'LIST "" "q*"', [r'* LIST (\HasNoChildren) "." "q\"uote"'], 'OK List completed')
        # CREATE with USE (RFC 6154): only the folder's own fixed attribute
        self.assertCmd(s, 'DELETE Trash', [], 'OK Delete completed')
        self.assertCmd(s, 'CREATE Trash (USE (\\Trash))', [], 'OK Create completed')
        self.assertCmd(s, 'CREATE Other (USE (\\Trash))', [], re.compile(r'^NO \[USEATTR\]'))
        self.assertFalse(os.path.exists(os.path.join(md, '.Other')))

    def test_mutf7_names(self):
        u = self.user()
        s = self.login(u)
        typ, data = s.M.create('Entw&APw-rfe')
        self.assertEqual(typ, 'OK', data)
        md = self.maildir(u)
        self.assertTrue(os.path.isdir(os.path.join(md, '.Entw&APw-rfe', 'cur')))
        self.assertCmd(s, 'LIST "" "Entw*"', [r'* LIST (\HasNoChildren) "." Entw&APw-rfe'], 'OK List completed')
        self.assertCmd(s, 'LIST "" "*&APw-*"', [r'* LIST (\HasNoChildren) "." Entw&APw-rfe'],
                       'OK List completed')
        self.assertCmd(s, 'CREATE "&ZeVnLIqe-.&U,BTFw-"', [], 'OK Create completed')  # 日本語.台北
        self.assertCmd(s, 'LIST "" "&ZeVnLIqe-*"', [
            r'* LIST (\Noselect \HasChildren) "." &ZeVnLIqe-',
            r'* LIST (\HasNoChildren) "." &ZeVnLIqe-.&U,BTFw-'], 'OK List completed')
        self.assertCmd(s, 'CREATE "a&-b"', [], 'OK Create completed')   # "a&b"
        self.assertCmd(s, 'STATUS Entw&APw-rfe (MESSAGES)', ['* STATUS Entw&APw-rfe (MESSAGES 0)'],
                       'OK Status completed')
        self.assertEqual(s.M.select('Entw&APw-rfe')[0], 'OK')
        # raw UTF-8 is not modified UTF-7; nor are non-canonical forms
        self.assertCmd(s, 'CREATE', [], 'NO [CANNOT] Invalid mailbox name', literal='Entwürfe'.encode())
        for bad in ('Entw&APw', 'Entw&APw-rf&AOQ', 'a&b', '&AGE-', '&-&-x&Jjo'):
            self.assertCmd(s, 'CREATE "%s"' % bad, [], 'NO [CANNOT] Invalid mailbox name')
        self.assertCmd(s, 'LIST "" "Entw&APw*"', [], re.compile('^BAD '))

    def test_bad_names_rejected(self):
        u = self.user()
        s = self.login(u)
        before = self.dirs()
        bad = ['..', '../x', '../../../../tmp/evil', 'a/b', '/abs', 'a..b', '.a', 'a.b..', '.', '..a',
               'x' * 201, 'a.' + 'y' * 199, '*', 'a%b', 'a*', '~/x/..', 'subscriptions.tmp', '']
        for name in bad:
            self.assertCmd(s, 'CREATE "%s"' % name, [], 'NO [CANNOT] Invalid mailbox name')
        for name in ('a\x01b', 'a\x7fb', 'a\tb', 'a\rb'):
            self.assertCmd(s, 'CREATE', [], 'NO [CANNOT] Invalid mailbox name', literal=name.encode())
        self.assertCmd(s, 'CREATE', [], re.compile('^(BAD|NO) '), literal=b'a\x00b')
        for name in ('..', '../x', 'a/b', 'a..b'):
            self.assertCmd(s, 'RENAME Sent "%s"' % name, [], 'NO [CANNOT] Invalid mailbox name')
            self.assertCmd(s, 'RENAME "%s" Sent2' % name, [], 'NO [CANNOT] Invalid mailbox name')
            self.assertCmd(s, 'DELETE "%s"' % name, [], 'NO [CANNOT] Invalid mailbox name')
            self.assertCmd(s, 'RENAME INBOX "%s"' % name, [], 'NO [CANNOT] Invalid mailbox name')
            self.assertCmd(s, 'STATUS "%s" (MESSAGES)' % name, [], 'NO [CANNOT] Invalid mailbox name')
            self.assertCmd(s, 'SUBSCRIBE "%s"' % name, [], 'NO [CANNOT] Invalid mailbox name')
        self.assertCmd(s, 'RENAME Sent subscriptions.tmp', [], 'NO [CANNOT] Invalid mailbox name')
        # nothing new on disk, inside the Maildir or out of it
        self.assertEqual(self.dirs() - before, set())
        md = self.maildir(u)
        for name in bad[:5]:
            for path in (os.path.join(md, '.' + name), os.path.join(md, name)):
                if name and not os.path.normpath(path).startswith(self.srv.tmp):
                    self.assertFalse(os.path.exists(os.path.normpath(path)), path)
        self.assertCmd(s, 'LIST "" "*"', DEFAULTS, 'OK List completed')
        # subscriptions still work (its temporary file is not a folder)
        self.assertCmd(s, 'SUBSCRIBE INBOX', [], 'OK Subscribe completed')
        self.assertCmd(s, 'CREATE', [], re.compile('^BAD '))
        self.assertCmd(s, 'CREATE a b c', [], re.compile('^BAD '))

    # ---------------------------------------------------------------- DELETE

    def test_delete(self):
        u = self.user()
        s = self.login(u)
        md = self.maildir(u)
        self.assertCmd(s, 'DELETE INBOX', [], 'NO [CANNOT] INBOX cannot be deleted')
        self.assertCmd(s, 'DELETE inbox', [], 'NO [CANNOT] INBOX cannot be deleted')
        self.assertCmd(s, 'DELETE nosuch', [], "NO [NONEXISTENT] Mailbox doesn't exist: nosuch")
        self.assertCmd(s, 'CREATE p.q', [], 'OK Create completed')
        self.assertCmd(s, 'DELETE p', [], "NO [NONEXISTENT] Mailbox doesn't exist: p")
        self.assertCmd(s, 'CREATE p', [], 'OK Create completed')
        # deleting a mailbox with children keeps them (RFC 3501 6.3.4)
        self.assertCmd(s, 'DELETE p', [], 'OK Delete completed')
        self.assertFalse(os.path.exists(os.path.join(md, '.p')))
        self.assertTrue(os.path.isdir(os.path.join(md, '.p.q', 'cur')))
        self.assertCmd(s, 'LIST "" "p*"', [r'* LIST (\Noselect \HasChildren) "." p',
                                           r'* LIST (\HasNoChildren) "." p.q'], 'OK List completed')
        # a folder with mail
        self.deliver(u, 2)
        self.assertCmd(s, 'RENAME INBOX Box', [], 'OK Rename completed')
        self.assertEqual(len(os.listdir(os.path.join(md, '.Box', 'new'))), 2)
        self.assertCmd(s, 'DELETE Box', [], 'OK Delete completed')
        self.assertFalse(os.path.exists(os.path.join(md, '.Box')))
        self.assertCmd(s, 'DELETE Archive', [], 'OK Delete completed')
        self.assertFalse(os.path.exists(os.path.join(md, '.Archive')))
        # DELETE does not unsubscribe (RFC 3501 6.3.6)
        self.assertCmd(s, 'LSUB "" "Archive"', [r'* LSUB (\Noselect) "." Archive'], 'OK Lsub completed')
        self.assertCmd(s, 'LIST (SUBSCRIBED) "" "Archive"', [r'* LIST (\NonExistent \Subscribed) "." Archive'],
                       'OK List completed')
        self.assertCmd(s, 'LIST "" "Archive"', [], 'OK List completed')
        # a new mailbox of the same name starts empty
        self.assertCmd(s, 'CREATE Archive', [], 'OK Create completed')
        self.assertCmd(s, 'STATUS Archive (MESSAGES UIDNEXT)', ['* STATUS Archive (MESSAGES 0 UIDNEXT 1)'],
                       'OK Status completed')
        # deleting the selected mailbox closes it
        s.M.select('Junk')
        self.assertCmd(s, 'DELETE Junk', ['* OK [CLOSED] Previous mailbox closed'], 'OK Delete completed')
        self.assertCmd(s, 'FETCH 1 FLAGS', [], 'BAD No mailbox selected')
        self.assertCmd(s, 'LIST "" "Junk"', [], 'OK List completed')
        # INBOX still selectable and intact
        typ, data = s.M.select('INBOX')
        self.assertEqual((typ, data), ('OK', [b'0']))

    def test_uidvalidity_of_recreated_mailbox(self):
        # RFC 3501 2.3.1.1: a mailbox created with the name of a deleted one
        # must get a new UIDVALIDITY, even within the same second.
        # Four generations within well under a second: at most one second
        # boundary falls between them, so a time-based value repeats.
        u = self.user()
        s = self.login(u)
        seen = []
        for _ in range(4):
            self.assertEqual(s.raw('CREATE again')[1], 'OK Create completed')
            seen.append(s.raw('STATUS again (UIDVALIDITY)')[0][0])
            self.assertEqual(s.raw('DELETE again')[1], 'OK Delete completed')
        self.assertEqual(len(set(seen)), 4, seen)

    # ---------------------------------------------------------------- RENAME

    def test_rename(self):
        u = self.user()
        s = self.login(u)
        md = self.maildir(u)
        for name in ('r', 'r.s', 'r.s.t', 'rx'):
            self.assertCmd(s, 'CREATE ' + name, [], 'OK Create completed')
        self.assertCmd(s, 'SUBSCRIBE r.s', [], 'OK Subscribe completed')
        self.assertCmd(s, 'SUBSCRIBE rx', [], 'OK Subscribe completed')
        self.assertCmd(s, 'RENAME r t', [], 'OK Rename completed')
        self.assertCmd(s, 'LIST "" "r*"', [r'* LIST (\HasNoChildren) "." rx'], 'OK List completed')
        self.assertCmd(s, 'LIST "" "t*"', [r'* LIST (\HasChildren) "." t', r'* LIST (\HasChildren) "." t.s',
                                           r'* LIST (\HasNoChildren) "." t.s.t'], 'OK List completed')
        for d in ('.t', '.t.s', '.t.s.t'):
            self.assertTrue(os.path.isdir(os.path.join(md, d, 'cur')), d)
        for d in ('.r', '.r.s', '.r.s.t'):
            self.assertFalse(os.path.exists(os.path.join(md, d)), d)
        # subscriptions follow the folder and its children, not a sibling sharing the prefix
        self.assertCmd(s, 'LSUB "" "*"', ['* LSUB () "." Archive', '* LSUB () "." Drafts', '* LSUB () "." Junk',
                                          '* LSUB () "." Sent', '* LSUB () "." Trash', '* LSUB () "." rx',
                                          '* LSUB () "." t.s'], 'OK Lsub completed')
        self.assertCmd(s, 'RENAME t rx', [], 'NO [ALREADYEXISTS] Target mailbox already exists')
        self.assertCmd(s, 'RENAME t t', [], 'NO [ALREADYEXISTS] Target mailbox already exists')
        self.assertCmd(s, 'RENAME t INBOX', [], 'NO [ALREADYEXISTS] Target mailbox already exists')
        self.assertCmd(s, 'RENAME nosuch y', [], "NO [NONEXISTENT] Mailbox doesn't exist: nosuch")
        self.assertCmd(s, 'RENAME t t.u', [], 'NO [CANNOT] Cannot rename a mailbox below itself')
        self.assertCmd(s, 'RENAME t.s a.b', [], 'OK Rename completed')
        self.assertCmd(s, 'LIST "" "a*"', [r'* LIST (\Noselect \HasChildren) "." a',
                                           r'* LIST (\HasChildren) "." a.b',
                                           r'* LIST (\HasNoChildren) "." a.b.t'], 'OK List completed')
        # messages and UIDs survive a rename
        self.deliver(u, 1)
        self.assertCmd(s, 'RENAME INBOX a.b.c', [], 'OK Rename completed')
        u1, _ = s.raw('STATUS a.b.c (MESSAGES UIDVALIDITY UIDNEXT)')
        self.assertCmd(s, 'RENAME a.b.c c', [], 'OK Rename completed')
        u2, _ = s.raw('STATUS c (MESSAGES UIDVALIDITY UIDNEXT)')
        self.assertEqual([l.replace('a.b.c', 'c') for l in u1], u2)
        self.assertIn('MESSAGES 1', u2[0])
        # renaming the selected mailbox closes it
        s.M.select('c')
        self.assertCmd(s, 'RENAME c d', ['* OK [CLOSED] Previous mailbox closed'], 'OK Rename completed')
        self.assertCmd(s, 'FETCH 1 FLAGS', [], 'BAD No mailbox selected')
        self.assertEqual(s.M.select('d'), ('OK', [b'1']))

    def test_rename_inbox(self):
        u = self.user()
        s = self.login(u)
        md = self.maildir(u)
        self.deliver(u, 3)
        self.assertEqual(s.M.select('INBOX'), ('OK', [b'3']))
        self.assertCmd(s, 'RENAME INBOX Sent', [], 'NO [ALREADYEXISTS] Target mailbox already exists')
        # INBOX stays selected: its messages leave it
        self.assertCmd(s, 'RENAME INBOX "Old Mail"', ['* 3 EXPUNGE', '* 2 EXPUNGE', '* 1 EXPUNGE'],
                       'OK Rename completed')
        self.assertCmd(s, 'STATUS INBOX (MESSAGES)', ['* STATUS INBOX (MESSAGES 0)'], 'OK Status completed')
        self.assertCmd(s, 'STATUS "Old Mail" (MESSAGES UNSEEN)', ['* STATUS "Old Mail" (MESSAGES 3 UNSEEN 3)'],
                       'OK Status completed')
        files = os.listdir(os.path.join(md, '.Old Mail', 'new')) + os.listdir(os.path.join(md, '.Old Mail', 'cur'))
        self.assertEqual(len(files), 3)
        self.assertEqual(os.listdir(os.path.join(md, 'new')) + os.listdir(os.path.join(md, 'cur')), [])
        self.assertCmd(s, 'LIST "" "*"', DEFAULTS[:4] + [r'* LIST (\HasNoChildren) "." "Old Mail"'] + DEFAULTS[4:],
                       'OK List completed')
        # new mail goes to the (still existing) INBOX
        self.deliver(u, 1)
        self.assertCmd(s, 'STATUS INBOX (MESSAGES)', ['* STATUS INBOX (MESSAGES 1)', '* 1 EXISTS', '* 1 RECENT'],
                       'OK Status completed')

    # ---------------------------------------------------------------- subscriptions

    def test_subscriptions(self):
        u = self.user()
        s = self.login(u)
        self.assertCmd(s, 'SUBSCRIBE nosuch', [], "NO [NONEXISTENT] Mailbox doesn't exist: nosuch")
        self.assertEqual(s.M.subscribe('INBOX')[0], 'OK')
        self.assertEqual(s.M.unsubscribe('Drafts')[0], 'OK')
        self.assertCmd(s, 'UNSUBSCRIBE Drafts', [], 'OK Unsubscribe completed')
        self.assertCmd(s, 'UNSUBSCRIBE nosuch', [], 'OK Unsubscribe completed')
        self.assertCmd(s, 'CREATE m.n', [], 'OK Create completed')
        self.assertCmd(s, 'SUBSCRIBE m.n', [], 'OK Subscribe completed')
        self.assertCmd(s, 'SUBSCRIBE m.n', [], 'OK Subscribe completed')
        with open(os.path.join(self.maildir(u), 'subscriptions')) as f:
            self.assertEqual(sorted(f.read().split('\n')), ['', 'Archive', 'INBOX', 'Junk', 'Sent', 'Trash', 'm.n'])
        typ, data = s.M.lsub()
        self.assertEqual(typ, 'OK')
        self.assertEqual([d.decode() for d in data], ['() "." INBOX', '() "." Archive', '() "." Junk',
                                                      '() "." Sent', '() "." Trash', '() "." m.n'])
        # RFC 3501 6.3.9: "%" shows the unsubscribed parent as \Noselect
        self.assertCmd(s, 'LSUB "" "%"', ['* LSUB () "." INBOX', '* LSUB () "." Archive', '* LSUB () "." Junk',
                                          '* LSUB () "." Sent', '* LSUB () "." Trash', r'* LSUB (\Noselect) "." m'],
                       'OK Lsub completed')
        self.assertCmd(s, 'LSUB "" "m.*"', ['* LSUB () "." m.n'], 'OK Lsub completed')
        # LIST-EXTENDED selection and return options
        self.assertCmd(s, 'LIST (SUBSCRIBED) "" "*"', [
            r'* LIST (\Subscribed) "." INBOX', r'* LIST (\Subscribed) "." Archive', r'* LIST (\Subscribed) "." Junk',
            r'* LIST (\Subscribed) "." Sent', r'* LIST (\Subscribed) "." Trash', r'* LIST (\Subscribed) "." m.n'],
            'OK List completed')
        self.assertCmd(s, 'LIST (SUBSCRIBED REMOTE RECURSIVEMATCH) "" "%" RETURN (CHILDREN)', [
            r'* LIST (\Subscribed \HasNoChildren) "." INBOX', r'* LIST (\Subscribed \HasNoChildren) "." Archive',
            r'* LIST (\Subscribed \HasNoChildren) "." Junk', r'* LIST (\Subscribed \HasNoChildren) "." Sent',
            r'* LIST (\Subscribed \HasNoChildren) "." Trash',
            r'* LIST (\NonExistent \HasChildren) "." m ("CHILDINFO" ("SUBSCRIBED"))'], 'OK List completed')
        self.assertCmd(s, 'LIST "" "%" RETURN (SUBSCRIBED)', [
            r'* LIST (\Subscribed) "." INBOX', r'* LIST (\Subscribed) "." Archive', '* LIST () "." Drafts',
            r'* LIST (\Subscribed) "." Junk', r'* LIST (\Subscribed) "." Sent', r'* LIST (\Subscribed) "." Trash',
            r'* LIST (\NonExistent) "." m'], 'OK List completed')
        self.assertCmd(s, 'LIST (SUBSCRIBED SPECIAL-USE) "" "*"', [
            r'* LIST (\Subscribed \Archive) "." Archive', r'* LIST (\Subscribed \Junk) "." Junk',
            r'* LIST (\Subscribed \Sent) "." Sent', r'* LIST (\Subscribed \Trash) "." Trash'], 'OK List completed')
        # a subscribed name whose mailbox is gone
        self.assertCmd(s, 'DELETE m.n', [], 'OK Delete completed')
        self.assertCmd(s, 'LIST (SUBSCRIBED) "" "m*" RETURN (CHILDREN)',
                       [r'* LIST (\NonExistent \Subscribed \HasNoChildren) "." m.n'], 'OK List completed')
        self.assertCmd(s, 'LIST "" "m*"', [], 'OK List completed')

    # ---------------------------------------------------------------- STATUS

    def test_status(self):
        u = self.user()
        s = self.login(u)
        md = self.maildir(u)
        self.deliver(u, 2, body=b'line one\r\nline two\r\n')
        # sizes as IMAP counts them: CRLF line ends
        size = 0
        for sub in ('new', 'cur'):
            for n in os.listdir(os.path.join(md, sub)):
                with open(os.path.join(md, sub, n), 'rb') as f:
                    size += len(f.read().replace(b'\n', b'\r\n'))
        # flags set by another Maildir reader: message 1 \Seen and \Deleted
        first = sorted(os.listdir(os.path.join(md, 'new')))[0]
        os.rename(os.path.join(md, 'new', first), os.path.join(md, 'cur', first + ':2,ST'))
        got, tagged = s.raw('STATUS INBOX (MESSAGES UIDNEXT UNSEEN SIZE DELETED UIDVALIDITY HIGHESTMODSEQ RECENT)')
        self.assertEqual(tagged, 'OK Status completed')
        self.assertEqual(len(got), 1)
        m = re.fullmatch(r'\* STATUS INBOX \(MESSAGES 2 UIDNEXT 3 UNSEEN 1 SIZE (\d+) DELETED 1 '
                         r'UIDVALIDITY (\d+) HIGHESTMODSEQ (\d+) RECENT (\d+)\)', got[0])
        self.assertIsNotNone(m, got)
        self.assertEqual(int(m.group(1)), size)
        uidvalidity, modseq = m.group(2), m.group(3)
        typ, data = s.M.status('INBOX', '(MESSAGES UNSEEN)')
        self.assertEqual((typ, data), ('OK', [b'INBOX (MESSAGES 2 UNSEEN 1)']))
        # the same figures as SELECT gives
        sel, tagged = s.raw('SELECT INBOX')
        self.assertIn('* OK [UIDVALIDITY %s] UIDs valid' % uidvalidity, sel)
        self.assertIn('* OK [HIGHESTMODSEQ %s] Highest' % modseq, sel)
        self.assertIn('* 2 RECENT', sel)
        # STATUS of the selected mailbox: this session's \Recent, and its view stays as it is
        self.assertCmd(s, 'STATUS INBOX (UNSEEN DELETED RECENT)', ['* STATUS INBOX (UNSEEN 1 DELETED 1 RECENT 2)'],
                       'OK Status completed')
        self.deliver(u, 1)
        # the new message shows in STATUS; the view learns of it after the STATUS line, as EXISTS
        self.assertCmd(s, 'STATUS INBOX (MESSAGES)', ['* STATUS INBOX (MESSAGES 3)', '* 3 EXISTS', '* 3 RECENT'],
                       'OK Status completed')
        self.assertCmd(s, 'STATUS Sent (MESSAGES UIDNEXT UNSEEN SIZE)',
                       ['* STATUS Sent (MESSAGES 0 UIDNEXT 1 UNSEEN 0 SIZE 0)'], 'OK Status completed')
        self.assertCmd(s, 'STATUS nosuch (MESSAGES)', [], "NO [NONEXISTENT] Mailbox doesn't exist: nosuch")
        self.assertCmd(s, 'STATUS INBOX (FOO)', [], re.compile('^BAD '))
        self.assertCmd(s, 'STATUS INBOX ()', [], re.compile('^BAD '))
        self.assertCmd(s, 'STATUS INBOX', [], re.compile('^BAD '))
        # LIST-STATUS (RFC 5819): a STATUS after each selectable mailbox
        self.assertCmd(s, 'CREATE z.w', [], 'OK Create completed')
        self.assertCmd(s, 'LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN))', [
            '* LIST () "." INBOX', '* STATUS INBOX (MESSAGES 3 UNSEEN 2)',
            '* LIST () "." Archive', '* STATUS Archive (MESSAGES 0 UNSEEN 0)',
            '* LIST () "." Drafts', '* STATUS Drafts (MESSAGES 0 UNSEEN 0)',
            '* LIST () "." Junk', '* STATUS Junk (MESSAGES 0 UNSEEN 0)',
            '* LIST () "." Sent', '* STATUS Sent (MESSAGES 0 UNSEEN 0)',
            '* LIST () "." Trash', '* STATUS Trash (MESSAGES 0 UNSEEN 0)',
            r'* LIST (\NonExistent) "." z'], 'OK List completed')
        self.assertCmd(s, 'LIST "" "z*" RETURN (CHILDREN STATUS (UIDNEXT))', [
            r'* LIST (\NonExistent \HasChildren) "." z',
            r'* LIST (\HasNoChildren) "." z.w', '* STATUS z.w (UIDNEXT 1)'], 'OK List completed')

    # ---------------------------------------------------------------- QUOTA

    def test_quota(self):
        u = self.user(quota='100k')
        s = self.login(u)
        md = self.maildir(u)
        self.deliver(u, 3, body=(b'y' * 998 + b'\r\n') * 10)
        self.assertCmd(s, 'RENAME INBOX Moved', [], 'OK Rename completed')
        self.deliver(u, 1, body=(b'y' * 998 + b'\r\n') * 10)
        used = 0
        for dirpath, _, files in os.walk(md):
            if os.path.basename(dirpath) in ('new', 'cur'):
                used += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        self.assertGreater(used // 1024, 30)
        quota_line = '* QUOTA "" (STORAGE %d 100)' % (used // 1024)
        self.assertCmd(s, 'GETQUOTAROOT INBOX', ['* QUOTAROOT INBOX ""', quota_line], 'OK Getquotaroot completed')
        self.assertCmd(s, 'GETQUOTAROOT Archive', ['* QUOTAROOT Archive ""', quota_line],
                       'OK Getquotaroot completed')
        self.assertCmd(s, 'GETQUOTA ""', [quota_line], 'OK Getquota completed')
        typ, data = s.M.getquotaroot('INBOX')
        self.assertEqual(typ, 'OK')
        self.assertEqual(data, [[b'INBOX ""'], [quota_line[len('* QUOTA '):].encode()]])
        self.assertCmd(s, 'GETQUOTA "other"', [], 'NO [NONEXISTENT] No such quota root')
        self.assertCmd(s, 'GETQUOTAROOT nosuch', [], "NO [NONEXISTENT] Mailbox doesn't exist: nosuch")
        self.assertCmd(s, 'SETQUOTA "" (STORAGE 512)', [], 'NO [CANNOT] Quotas are set by the administrator')
        self.assertCmd(s, 'SETQUOTA ""', [], re.compile('^BAD '))
        # STATUS DELETED-STORAGE (RFC 9208): what expunging the \Deleted messages would free
        moved = os.path.join(md, '.Moved')
        name = sorted(os.listdir(os.path.join(moved, 'new')))[0]
        fsize = os.path.getsize(os.path.join(moved, 'new', name))
        os.rename(os.path.join(moved, 'new', name), os.path.join(moved, 'cur', name + ':2,T'))
        self.assertCmd(s, 'STATUS Moved (MESSAGES DELETED DELETED-STORAGE)',
                       ['* STATUS Moved (MESSAGES 3 DELETED 1 DELETED-STORAGE %d)' % (fsize // 1024)],
                       'OK Status completed')
        self.assertGreater(fsize // 1024, 5)
        # a user without a quota has no quota root
        v = self.user()
        t = self.login(v)
        self.assertCmd(t, 'GETQUOTAROOT INBOX', ['* QUOTAROOT INBOX'], 'OK Getquotaroot completed')
        self.assertCmd(t, 'GETQUOTA ""', [], 'NO [NONEXISTENT] No such quota root')

    def test_not_authenticated(self):
        M = imaplib.IMAP4(*self.srv.addr('imap'), timeout=scaled(20))
        try:
            for c in ('LIST "" "*"', 'CREATE x', 'STATUS INBOX (MESSAGES)', 'GETQUOTAROOT INBOX'):
                tag = M._new_tag().decode()
                M.send(('%s %s\r\n' % (tag, c)).encode())
                self.assertEqual(M.readline(), ('%s BAD Log in first\r\n' % tag).encode())
        finally:
            M.shutdown()


if __name__ == '__main__':
    unittest.main(verbosity=2)
