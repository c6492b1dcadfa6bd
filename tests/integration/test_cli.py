"""The admin CLI: domain, user and alias commands and their failures."""

import glob
import os
import poplib
import re
import smtplib
import sqlite3
import unittest

from buzon_test import (BuzonTestCase, Server, PASSWORD, POP3_LISTENERS, make_message, body_of, stored_form,
                        scaled)

FOLDERS = ('Drafts', 'Sent', 'Trash', 'Junk', 'Archive')


def alias_pairs(listing):
    """{(alias, target)} from `alias list` output: each line names an alias and its targets."""
    pairs = set()
    for line in listing.splitlines():
        words = [w.strip('<>,:') for w in re.split(r'[\s,]+', line) if w not in ('->', '=>', ':', '')]
        words = [w for w in words if '@' in w]
        for t in words[1:]:
            pairs.add((words[0].lower(), t.lower()))
    return pairs


class CLI(BuzonTestCase):

    def setUp(self):
        super().setUp()
        self.s = Server()
        self.servers.append(self.s)
        self.s.write_config()

    def ok(self, *args, input=None):
        return self.s.cli_ok(*args, input=input)

    def refused(self, *args, input=None, usage=False):
        """The command fails: non-zero exit and one line on stderr."""
        p = self.s.cli(*args, input=input)
        self.assertNotEqual(p.returncode, 0, '%r must fail; stdout %r' % (args, p.stdout))
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        if not usage:
            self.assertEqual(len(lines), 1, '%r: want one line on stderr, got %r' % (args, p.stderr))
        else:
            self.assertGreaterEqual(len(lines), 1, '%r: says nothing on stderr' % (args,))
        return p

    def listed(self, *args):
        return self.ok(*args).stdout

    def hashes(self):
        """Every text value in the database that looks like a crypt(3) hash."""
        out = set()
        db = sqlite3.connect(os.path.join(self.s.data_dir, 'buzon.db'))
        try:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                for row in db.execute('SELECT * FROM "%s"' % table):
                    out.update(v for v in row if isinstance(v, str) and v.startswith('$'))
        finally:
            db.close()
        return out

    def db_bytes(self):
        data = b''
        for p in glob.glob(os.path.join(self.s.data_dir, 'buzon.db*')):
            with open(p, 'rb') as f:
                data += f.read()
        return data

    # -- domains -----------------------------------------------------------------

    def test_domains(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('domain', 'add', 'Other.EXAMPLE')
        out = self.listed('domain', 'list')
        self.assertEqual(sorted(out.split()), ['example.test', 'other.example'])
        self.refused('domain', 'add', 'example.test')          # duplicate
        self.refused('domain', 'add', 'EXAMPLE.test')          # duplicate, other case
        self.refused('domain', 'add', 'bad domain')
        self.refused('domain', 'add', 'bad_domain!.test')
        self.refused('domain', 'add', '')
        self.refused('domain', 'add', 'user@example.test')
        self.refused('domain', 'add', '../../etc')
        self.refused('domain', 'add', 'a' * 300 + '.test')
        self.ok('domain', 'del', 'other.example')
        self.assertEqual(self.listed('domain', 'list').split(), ['example.test'])
        self.refused('domain', 'del', 'other.example')         # no longer there
        self.refused('domain', 'del', 'never.example')

    def test_domain_with_users_cannot_be_deleted(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', input='pw1\n')
        self.refused('domain', 'del', 'example.test')
        self.assertIn('example.test', self.listed('domain', 'list').split())
        self.ok('user', 'del', 'alice@example.test')
        self.ok('domain', 'del', 'example.test')
        self.assertEqual(self.listed('domain', 'list').split(), [])

    def test_domain_with_aliases_cannot_be_deleted(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('domain', 'add', 'other.example')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', input='pw1\n')
        self.ok('alias', 'add', 'info@other.example', 'alice@example.test')
        self.refused('domain', 'del', 'other.example')
        self.ok('alias', 'del', 'info@other.example')
        self.ok('domain', 'del', 'other.example')

    # -- users -------------------------------------------------------------------

    def test_user_add_creates_maildir_and_folders(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('user', 'add', 'Alice@Example.Test', '--password-stdin', input=PASSWORD + '\n')
        md = os.path.join(self.s.data_dir, 'mail', 'example.test', 'alice')
        for sub in ('tmp', 'new', 'cur'):
            self.assertTrue(os.path.isdir(os.path.join(md, sub)), sub)
        for f in FOLDERS:
            for sub in ('tmp', 'new', 'cur'):
                self.assertTrue(os.path.isdir(os.path.join(md, '.' + f, sub)), '.%s/%s' % (f, sub))
            self.assertTrue(os.path.isfile(os.path.join(md, '.' + f, 'maildirfolder')),
                            '.%s/maildirfolder (Maildir++)' % f)
        self.assertIn('alice@example.test', self.listed('user', 'list'))
        self.assertNotIn(PASSWORD.encode(), self.db_bytes(), 'the password must not be stored in clear')
        self.assertTrue(any(h.startswith('$y$') for h in self.hashes()), 'yescrypt hash expected')

    def test_user_add_failures(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', input='pw1\n')
        self.refused('user', 'add', 'alice@example.test', '--password-stdin', input='pw2\n')   # duplicate
        self.refused('user', 'add', 'ALICE@example.test', '--password-stdin', input='pw2\n')   # same user
        self.refused('user', 'add', 'bob@unknown.example', '--password-stdin', input='pw\n')  # unknown domain
        for bad in ('not-an-address', '@example.test', 'bob@', 'bo b@example.test', 'a/b@example.test',
                    '../x@example.test', '.bob@example.test', 'bob.@example.test', 'bo..b@example.test',
                    '"bob"@example.test', 'bob@example.test@example.test', 'x' * 65 + '@example.test',
                    'bob\n@example.test'):
            with self.subTest(address=bad):
                self.refused('user', 'add', bad, '--password-stdin', input='pw\n')
        users = self.listed('user', 'list')
        self.assertEqual([l for l in users.splitlines() if '@' in l and 'alice@example.test' not in l], [],
                         'only alice may exist: %r' % users)
        self.assertEqual(sorted(os.listdir(os.path.join(self.s.data_dir, 'mail', 'example.test'))), ['alice'])

    def test_password_rules(self):
        self.ok('domain', 'add', 'example.test')
        self.refused('user', 'add', 'bob@example.test', '--password-stdin', input='\n')   # empty
        self.refused('user', 'add', 'bob@example.test', '--password-stdin', input='')     # no input
        # A password on the command line is refused (it would show in ps and shell history).
        self.refused('user', 'add', 'bob@example.test', 'secret', usage=True)
        self.refused('user', 'add', 'bob@example.test', '--password', 'secret', usage=True)
        # Without --password-stdin the password comes from the terminal: there is none here.
        self.refused('user', 'add', 'bob@example.test', input='secret\n', usage=True)
        self.assertNotIn('bob@example.test', self.listed('user', 'list'))
        self.ok('user', 'add', 'bob@example.test', '--password-stdin', input='s3cret with spaces\n')
        self.assertIn('bob@example.test', self.listed('user', 'list'))

    def test_passwd(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', input='first password\n')
        before = self.hashes()
        self.ok('user', 'passwd', 'alice@example.test', '--password-stdin', input='second password\n')
        after = self.hashes()
        self.assertNotEqual(before, after, 'passwd must change the stored hash')
        self.assertNotIn(b'second password', self.db_bytes())
        self.refused('user', 'passwd', 'alice@example.test', '--password-stdin', input='\n')
        self.assertEqual(self.hashes(), after, 'a refused passwd changes nothing')
        self.refused('user', 'passwd', 'nobody@example.test', '--password-stdin', input='x\n')

    def test_quota(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', '--quota', '5M', input='pw\n')
        self.ok('user', 'quota', 'alice@example.test', '10M')
        self.ok('user', 'quota', 'alice@example.test', '0')
        self.refused('user', 'quota', 'alice@example.test', '10X')
        self.refused('user', 'quota', 'alice@example.test', '-5')
        self.refused('user', 'quota', 'nobody@example.test', '1M')
        self.refused('user', 'add', 'bob@example.test', '--password-stdin', '--quota', 'lots', input='pw\n')
        self.assertNotIn('bob@example.test', self.listed('user', 'list'))

    def test_disable_enable(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', input='pw\n')
        self.ok('user', 'disable', 'alice@example.test')
        line = [l for l in self.listed('user', 'list').splitlines() if 'alice@example.test' in l]
        self.assertEqual(len(line), 1, 'a disabled user still exists')
        self.assertIn('disabled', line[0], 'user list shows the state')
        self.ok('user', 'enable', 'alice@example.test')
        line = [l for l in self.listed('user', 'list').splitlines() if 'alice@example.test' in l]
        self.assertNotIn('disabled', line[0])
        self.refused('user', 'disable', 'nobody@example.test')
        self.refused('user', 'enable', 'nobody@example.test')

    def test_user_del(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', input='pw\n')
        self.ok('user', 'del', 'alice@example.test')
        self.assertNotIn('alice@example.test', self.listed('user', 'list'))
        self.refused('user', 'del', 'alice@example.test')
        self.refused('user', 'del', 'not an address')
        # The Maildir is kept (mail is never deleted by accident), out of mail/.
        self.assertFalse(os.path.exists(os.path.join(self.s.data_dir, 'mail', 'example.test', 'alice')))
        kept = glob.glob(os.path.join(self.s.data_dir, 'deleted', 'example.test', 'alice.*', 'new'))
        self.assertEqual(len(kept), 1, kept)

    def pop3_count(self, s, address, password=PASSWORD):
        host, port = s.addr('pop')
        p = poplib.POP3(host, port, timeout=scaled(20))
        try:
            p.user(address)
            p.pass_(password)
            return p.stat()[0]
        finally:
            p.quit()

    def test_user_del_then_add_never_hands_over_mail(self):
        """Issue 8, item 12: add, deliver, del, add again: the new account
        starts empty, the old mail waits in data_dir/deleted/, and
        --reuse-mail gives it back when put in place (a restore)."""
        s = self.new_server(users=('alice',), listeners=POP3_LISTENERS)
        md = s.maildir('alice@example.test')
        msg = make_message('for the first alice')
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(10)) as c:
            self.assertEqual(c.sendmail('a@client.example.org', ['alice@example.test'], msg), {})
        self.assertEqual(self.pop3_count(s, 'alice@example.test'), 1)

        p = s.cli_ok('user', 'del', 'alice@example.test')
        m = re.search(r'moved to (\S+)', p.stdout)
        self.assertIsNotNone(m, p.stdout)
        moved = m.group(1)
        self.assertEqual(os.path.dirname(moved), os.path.join(s.data_dir, 'deleted', 'example.test'))
        self.assertRegex(os.path.basename(moved), r'^alice\.\d+$')
        self.assertFalse(os.path.exists(md), 'the Maildir is still in mail/')
        self.assertEqual(os.stat(os.path.join(s.data_dir, 'deleted')).st_mode & 0o777, 0o700)
        kept = os.listdir(os.path.join(moved, 'new')) + os.listdir(os.path.join(moved, 'cur'))
        self.assertEqual(len(kept), 1, 'the old mail is not in %s' % moved)

        # A delivery to the deleted user is refused and makes no Maildir.
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(10)) as c:
            c.ehlo()
            c.mail('a@client.example.org')
            code, _ = c.rcpt('alice@example.test')
            self.assertEqual(code, 550)
        self.assertFalse(os.path.exists(md), 'a delivery made the deleted user a Maildir')

        # The new alice starts empty.
        s.add_user('alice@example.test', password='new alice')
        self.assertEqual(s.messages('alice@example.test'), [])
        self.assertEqual(self.pop3_count(s, 'alice@example.test', 'new alice'), 0)

        # A restore: the old Maildir put back while no user has it.
        s.cli_ok('user', 'del', 'alice@example.test')
        os.rename(moved, md)
        p = s.cli('user', 'add', 'alice@example.test', '--password-stdin', input='x\n')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertIn('--reuse-mail', p.stderr)
        self.assertNotIn('alice@example.test', s.cli_ok('user', 'list').stdout)
        p = s.cli_ok('user', 'add', 'alice@example.test', '--password-stdin', '--reuse-mail', input='restored\n')
        self.assertIn(md, p.stdout)
        self.assertEqual(self.pop3_count(s, 'alice@example.test', 'restored'), 1)
        got = s.messages('alice@example.test') + s.messages('alice@example.test', 'cur')
        self.assertEqual([body_of(m) for m in got], [stored_form(msg)])

    def test_reuse_mail_only_for_user_add(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', input='pw\n')
        self.refused('user', 'passwd', 'alice@example.test', '--password-stdin', '--reuse-mail', input='pw\n',
                     usage=True)
        self.refused('user', 'del', 'alice@example.test', '--reuse-mail', usage=True)
        # Without a Maildir at the path, --reuse-mail is a plain add.
        self.ok('user', 'add', 'bob@example.test', '--password-stdin', '--reuse-mail', input='pw\n')
        self.assertTrue(os.path.isdir(os.path.join(self.s.data_dir, 'mail', 'example.test', 'bob', 'new')))

    def test_user_list(self):
        self.ok('domain', 'add', 'example.test')
        self.ok('domain', 'add', 'other.example')
        self.ok('user', 'add', 'alice@example.test', '--password-stdin', input='pw\n')
        self.ok('user', 'add', 'bob@other.example', '--password-stdin', input='pw\n')
        out = self.listed('user', 'list')
        self.assertIn('alice@example.test', out)
        self.assertIn('bob@other.example', out)

    # -- aliases -------------------------------------------------------------------

    def test_aliases(self):
        self.ok('domain', 'add', 'example.test')
        for u in ('alice', 'bob'):
            self.ok('user', 'add', u + '@example.test', '--password-stdin', input='pw\n')
        self.ok('alias', 'add', 'info@example.test', 'alice@example.test')
        self.ok('alias', 'add', 'team@example.test', 'alice@example.test', 'bob@example.test')
        self.ok('alias', 'add', '@example.test', 'bob@example.test')   # catch-all
        out = self.listed('alias', 'list')
        for alias, target in (('info@example.test', 'alice@example.test'),
                              ('team@example.test', 'alice@example.test'),
                              ('team@example.test', 'bob@example.test'),
                              ('@example.test', 'bob@example.test')):
            self.assertIn((alias, target), alias_pairs(out), out)
        self.refused('alias', 'add', 'x@example.test', 'nobody@example.test')     # target not a user
        self.refused('alias', 'add', 'x@unknown.example', 'alice@example.test')   # alias domain not local
        self.refused('alias', 'add', 'bad alias@example.test', 'alice@example.test')
        self.refused('alias', 'add', 'y@example.test', usage=True)                # no target
        self.ok('alias', 'del', 'team@example.test', 'bob@example.test')
        pairs = alias_pairs(self.listed('alias', 'list'))
        self.assertNotIn(('team@example.test', 'bob@example.test'), pairs)
        self.assertIn(('team@example.test', 'alice@example.test'), pairs)
        self.ok('alias', 'del', 'team@example.test')
        pairs = alias_pairs(self.listed('alias', 'list'))
        self.assertFalse([p for p in pairs if p[0] == 'team@example.test'], pairs)
        self.refused('alias', 'del', 'team@example.test')
        self.ok('alias', 'del', '@example.test')
        pairs = alias_pairs(self.listed('alias', 'list'))
        self.assertEqual(pairs, {('info@example.test', 'alice@example.test')})

    # -- usage ---------------------------------------------------------------------

    def test_usage_errors(self):
        for args in (['frobnicate'], ['domain'], ['domain', 'frob'], ['user'], ['user', 'add'],
                     ['alias', 'add'], ['domain', 'add'], []):
            with self.subTest(args=args):
                self.refused(*args, usage=True)

    def test_bad_config_for_cli(self):
        self.s.write_config(raw='[server]\nhostname = x.example\n')
        p = self.s.cli('domain', 'list')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(self.s.config_path, p.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
