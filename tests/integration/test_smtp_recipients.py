"""RCPT TO: local users, disabled users, non-local domains, relay tricks,
plus-addressing, aliases, catch-all, recipient limit, quota."""

import os
import unittest

from buzon_test import (BuzonTestCase, HOSTNAME, make_message, dot_stuff, body_of, split_delivered,
                         stored_form)

ALICE = 'alice@example.test'
BOB = 'bob@example.test'
CAROL = 'carol@example.test'
DAVE = 'dave@example.test'
SENDER = 'sender@client.example.org'

# Addresses that try to make us relay (RFC 5321 3.6, 3.8; RFC 2505). None of
# them may be accepted, and nothing may be delivered anywhere for them.
RELAY_TRICKS = [
    'user%other.example@example.test',
    'other.example!user@example.test',
    '@relay.example:user@other.example',
    '"user@other.example"@example.test',
    'alice%other.example@example.test',
    'other.example!alice@example.test',
    '"alice@other.example"@example.test',
    '@example.test:alice@other.example',
    '@relay.example,@relay2.example:user@other.example',
]


def mail_dirs(s):
    return sorted(dirpath for dirpath, _, _ in os.walk(s.data_dir))


class Recipients(BuzonTestCase):

    def rcpt(self, server, address, mail_from=SENDER):
        """One MAIL + RCPT + (DATA if accepted); returns the RCPT reply."""
        msg = make_message('to ' + address)
        with server.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % mail_from).code, 250)
            r = c.cmd('RCPT TO:<%s>' % address)
            if r.code == 250:
                self.assertEqual(c.cmd('DATA').code, 354)
                c.send(dot_stuff(msg) + b'.\r\n')
                c.reply()
            else:
                d = c.cmd('DATA')
                self.assertGreaterEqual(d.code, 500, 'DATA with no recipient: %r' % d)
            c.cmd('QUIT')
        return r

    def test_unknown_user(self):
        s = self.new_server()
        r = self.rcpt(s, 'nobody@example.test')
        self.assertReply(r, 550, '5.1.1')
        self.assertNoMail(s)

    def test_disabled_user(self):
        s = self.new_server()
        s.cli_ok('user', 'disable', BOB)
        r = self.rcpt(s, BOB)
        self.assertReply(r, 550, '5.2.1')
        r = self.rcpt(s, 'bob+tag@example.test')
        self.assertReply(r, 550, '5.2.1')
        self.assertNoMail(s)
        s.cli_ok('user', 'enable', BOB)
        r = self.rcpt(s, BOB)
        self.assertReply(r, 250)
        self.assertEqual(len(s.messages(BOB)), 1)

    def test_alias_to_disabled_user_only(self):
        s = self.new_server()
        s.add_alias('info@example.test', BOB)
        s.cli_ok('user', 'disable', BOB)
        r = self.rcpt(s, 'info@example.test')
        self.assertReply(r, 550, '5.2.1')
        self.assertNoMail(s)

    def test_non_local_domain(self):
        s = self.new_server()
        for a in ('alice@other.example', 'user@example.test.other.example', 'user@sub.example.test',
                  'postmaster@client.example.org'):
            r = self.rcpt(s, a)
            self.assertReply(r, 550, '5.7.1')
        self.assertNoMail(s)

    def check_relay_tricks(self, s):
        accepted = []
        for a in RELAY_TRICKS:
            r = self.rcpt(s, a)
            if r.code != 550:
                accepted.append((a, r))
        self.assertEqual(accepted, [], 'relay attempts must get 550')
        self.assertNoMail(s, 'relay attempts delivered something')

    def test_never_relays(self):
        s = self.new_server(users=False)
        s.add_domain()
        for u in ('alice', 'user'):
            s.add_user(u + '@example.test')
        self.check_relay_tricks(s)

    def test_never_relays_with_catch_all(self):
        """A catch-all takes unknown local parts, but never an address that routes elsewhere."""
        s = self.new_server(users=False)
        s.add_domain()
        for u in ('alice', 'user', 'catch'):
            s.add_user(u + '@example.test')
        s.add_alias('@example.test', 'catch@example.test')
        self.check_relay_tricks(s)

    def test_path_traversal_addresses(self):
        s = self.new_server()
        before = mail_dirs(s)
        for a in ('../alice@example.test', 'alice/../bob@example.test', '..@example.test',
                  'alice@../example.test', 'alice@example.test/..', '.@example.test',
                  'a/b@example.test', 'alice@example.test/../../x', '..%2f..@example.test'):
            with self.subTest(address=a):
                r = self.rcpt(s, a)
                self.assertEqual(r.code // 100, 5, r)
        self.assertNoMail(s)
        self.assertEqual(mail_dirs(s), before, 'no directory may appear')

    def test_directory_changes_seen_live(self):
        """Users, aliases and state changed with the CLI apply to the running server at once."""
        s = self.new_server()
        self.assertReply(self.rcpt(s, 'erin@example.test'), 550, '5.1.1')
        s.add_user('erin@example.test')
        self.assertReply(self.rcpt(s, 'erin@example.test'), 250)
        s.add_alias('sales@example.test', 'erin@example.test')
        self.assertReply(self.rcpt(s, 'sales@example.test'), 250)
        s.cli_ok('alias', 'del', 'sales@example.test')
        self.assertReply(self.rcpt(s, 'sales@example.test'), 550, '5.1.1')
        # counted before "user del", which may move the Maildir away
        self.assertEqual(len(s.messages('erin@example.test')), 2)
        s.cli_ok('user', 'del', 'erin@example.test')
        self.assertReply(self.rcpt(s, 'erin@example.test'), 550, '5.1.1')
        s.add_domain('second.example')
        s.add_user('frank@second.example')
        self.assertReply(self.rcpt(s, 'frank@second.example'), 250)
        self.assertEqual(len(s.messages('frank@second.example')), 1)

    def test_utf8_unknown_recipient(self):
        s = self.new_server()
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s> SMTPUTF8' % SENDER).code, 250)
            r = c.cmd('RCPT TO:<jürgen@example.test>')
            self.assertReply(r, 550, '5.1.1')
        self.assertNoMail(s)

    def test_local_part_too_long(self):
        s = self.new_server()
        r = self.rcpt(s, 'a' * 65 + '@example.test')
        self.assertEqual(r.code // 100, 5, r)
        self.assertNoMail(s)

    def test_plus_addressing(self):
        s = self.new_server()
        msg = make_message('plus')
        with s.connect() as c:
            r = c.send_message(SENDER, ['alice+news@example.test'], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertDelivered(s, got[0], msg, SENDER, ALICE)

    def test_plus_addressing_disabled(self):
        s = self.new_server(smtp={'recipient_delimiter': ''})
        r = self.rcpt(s, 'alice+news@example.test')
        self.assertReply(r, 550, '5.1.1')
        self.assertNoMail(s)

    def test_alias_fans_out(self):
        s = self.new_server()
        s.add_alias('team@example.test', ALICE, BOB)
        msg = make_message('team')
        with s.connect() as c:
            r = c.send_message(SENDER, ['team@example.test'], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        for u in (ALICE, BOB):
            got = s.messages(u)
            self.assertEqual(len(got), 1, u)
            self.assertDelivered(s, got[0], msg, SENDER, u)
        self.assertEqual(s.messages(CAROL), [])

    def test_alias_with_tag(self):
        s = self.new_server()
        s.add_alias('info@example.test', CAROL)
        r = self.rcpt(s, 'info+x@example.test')
        self.assertReply(r, 250)
        self.assertEqual(len(s.messages(CAROL)), 1)

    def test_duplicate_targets_get_one_copy(self):
        s = self.new_server()
        s.add_alias('info@example.test', ALICE)
        msg = make_message('dups')
        with s.connect() as c:
            r = c.send_message(SENDER, [ALICE, 'alice+tag@example.test', 'info@example.test',
                                        'ALICE@example.test'], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        self.assertEqual(len(s.messages(ALICE)), 1, 'one copy per mailbox')

    def test_catch_all(self):
        s = self.new_server()
        s.add_alias('@example.test', DAVE)
        msg = make_message('catch-all')
        with s.connect() as c:
            r = c.send_message(SENDER, ['whoever@example.test', ALICE], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)
        self.assertEqual(len(s.messages(DAVE)), 1)
        self.assertEqual(len(s.messages(ALICE)), 1, 'an existing user still gets their own mail')
        self.assertEqual(body_of(s.messages(DAVE)[0]), stored_form(msg))
        # A catch-all only covers its own domain.
        r = self.rcpt(s, 'whoever@other.example')
        self.assertReply(r, 550, '5.7.1')

    def test_max_recipients(self):
        s = self.new_server(smtp={'max_recipients': 3})
        msg = make_message('limit')
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
            for u in (ALICE, BOB, CAROL):
                self.assertReply(c.cmd('RCPT TO:<%s>' % u), 250)
            self.assertReply(c.cmd('RCPT TO:<%s>' % DAVE), 452, '4.5.3')
            self.assertReply(c.cmd('RCPT TO:<%s>' % DAVE), 452, '4.5.3')
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(dot_stuff(msg) + b'.\r\n')
            self.assertEqual(c.reply().code, 250)
        for u in (ALICE, BOB, CAROL):
            self.assertEqual(len(s.messages(u)), 1, u)
        self.assertEqual(s.messages(DAVE), [], 'the refused recipient must get nothing')

    def test_over_quota_mailbox(self):
        s = self.new_server()
        body = (b'y' * 78 + b'\r\n') * 100  # 8000 octets
        with s.connect() as c:
            r = c.send_message(SENDER, [BOB], dot_stuff(make_message('fill', body)))
            self.assertEqual(r.code, 250, r)
        self.assertEqual(len(s.messages(BOB)), 1)
        s.cli_ok('user', 'quota', BOB, '4k')
        r = self.rcpt(s, BOB)
        self.assertReply(r, 452, '4.2.2')
        self.assertEqual(len(s.messages(BOB)), 1, 'nothing more for an over-quota mailbox')

    def test_quota_size_hint(self):
        s = self.new_server(users=False)
        s.add_domain()
        s.add_user(ALICE, quota='8k')
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s> SIZE=50000' % SENDER).code, 250)
            self.assertReply(c.cmd('RCPT TO:<%s>' % ALICE), 452, '4.2.2')
        self.assertNoMail(s)

    def test_quota_exceeded_by_data(self):
        """No SIZE given: the message that would cross the quota is refused at end of data."""
        s = self.new_server(users=False)
        s.add_domain()
        s.add_user(ALICE, quota='8k')
        body = (b'z' * 78 + b'\r\n') * 300  # 24000 octets
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
            self.assertEqual(c.cmd('RCPT TO:<%s>' % ALICE).code, 250)
            self.assertEqual(c.cmd('DATA').code, 354)
            c.send(dot_stuff(make_message('big', body)) + b'.\r\n')
            self.assertReply(c.reply(), 452, '4.2.2')
            self.assertEqual(c.cmd('NOOP').code, 250, 'session still usable')
        self.assertNoMail(s)



class Postmaster(BuzonTestCase):
    """RFC 5321 4.5.1: "Postmaster" without a domain (in any case) and
    postmaster@ every local domain are accepted; the mail goes to [server]
    postmaster, or the oldest enabled user, unless the directory names a
    postmaster for that domain."""

    def send_to(self, s, rcpt):
        """MAIL + RCPT TO:<rcpt> (+ DATA when accepted); returns (RCPT reply, message)."""
        msg = make_message('to ' + rcpt)
        with s.connect() as c:
            c.ehlo()
            self.assertEqual(c.cmd('MAIL FROM:<%s>' % SENDER).code, 250)
            r = c.cmd('RCPT TO:<%s>' % rcpt)
            if r.code == 250:
                self.assertEqual(c.cmd('DATA').code, 354)
                c.send(dot_stuff(msg) + b'.\r\n')
                self.assertEqual(c.reply().code, 250)
            c.cmd('QUIT')
        return r, msg

    def delivered_to(self, s, address):
        return [dict(split_delivered(d)[0]).get('delivered-to') for d in s.messages(address)]

    def test_without_domain_any_case_goes_to_oldest_user(self):
        s = self.new_server()   # alice is the first user added
        sent = []
        for rcpt in ('postmaster', 'Postmaster', 'POSTMASTER'):
            r, msg = self.send_to(s, rcpt)
            self.assertReply(r, 250, '2.1.5')
            sent.append(msg)
        got = s.messages(ALICE)
        self.assertEqual(len(got), 3)
        # Delivered-To names the real mailbox; the body is byte-exact
        for data in got:
            self.assertIn(body_of(data), [stored_form(m) for m in sent])
            self.assertDelivered(s, data, sent[[stored_form(m) for m in sent].index(body_of(data))],
                                 SENDER, ALICE)
        for u in (BOB, CAROL, DAVE):
            self.assertEqual(s.messages(u), [])
        self.assertRegex(s.log(), r'postmaster resolved to=alice@example\.test via=oldest_user')

    def test_postmaster_of_each_local_domain(self):
        s = self.new_server()
        s.add_domain('second.test')
        s.add_user('erin@second.test')
        for rcpt in ('postmaster@example.test', 'PostMaster@second.test', 'postmaster@' + HOSTNAME.upper()):
            r, _ = self.send_to(s, rcpt)
            self.assertReply(r, 250, '2.1.5')
        self.assertEqual(len(s.messages(ALICE)), 3)
        self.assertEqual(s.messages('erin@second.test'), [])
        # a domain that is not ours is still not ours
        r, _ = self.send_to(s, 'postmaster@other.example')
        self.assertReply(r, 550, '5.7.1')

    def test_configured_postmaster(self):
        s = self.new_server(server={'postmaster': BOB})
        self.assertRegex(s.log(), r'postmaster mail goes to bob@example\.test')
        for rcpt in ('postmaster', 'postmaster@example.test'):
            r, _ = self.send_to(s, rcpt)
            self.assertReply(r, 250)
        self.assertEqual(self.delivered_to(s, BOB), [BOB, BOB])
        self.assertEqual(s.messages(ALICE), [])

    def test_configured_postmaster_may_be_an_alias(self):
        s = self.new_server(start=False, server={'postmaster': 'hostmaster@example.test'})
        s.add_alias('hostmaster@example.test', CAROL, DAVE)
        s.start()
        r, _ = self.send_to(s, 'Postmaster')
        self.assertReply(r, 250)
        self.assertEqual(self.delivered_to(s, CAROL), [CAROL])
        self.assertEqual(self.delivered_to(s, DAVE), [DAVE])

    def test_directory_entry_wins_for_its_domain(self):
        s = self.new_server(start=False, server={'postmaster': BOB})
        s.add_alias('postmaster@example.test', CAROL)
        s.add_alias('@example.test', DAVE)   # a catch-all is not a postmaster entry
        s.start()
        r, _ = self.send_to(s, 'postmaster@example.test')
        self.assertReply(r, 250)
        r, _ = self.send_to(s, 'postmaster')
        self.assertReply(r, 250)
        self.assertEqual(len(s.messages(CAROL)), 1)
        self.assertEqual(len(s.messages(BOB)), 1, 'Postmaster without a domain goes to [server] postmaster')
        self.assertEqual(s.messages(DAVE), [])

    def test_oldest_enabled_user(self):
        s = self.new_server(start=False)
        s.cli_ok('user', 'disable', ALICE)
        s.start()
        r, _ = self.send_to(s, 'postmaster')
        self.assertReply(r, 250)
        self.assertEqual(s.messages(ALICE), [])
        self.assertEqual(len(s.messages(BOB)), 1)

    def test_no_user_at_all(self):
        s = self.new_server(users=False, start=False)
        s.add_domain()
        s.start()
        self.assertIn('no user yet', s.log())
        for rcpt in ('postmaster', 'postmaster@example.test'):
            r, _ = self.send_to(s, rcpt)
            self.assertReply(r, 550, '5.1.1')
        self.assertNoMail(s)

    def test_configured_postmaster_not_deliverable(self):
        """Said at start; the mail still reaches a person (the oldest user)."""
        s = self.new_server(server={'postmaster': 'nobody@example.test'})
        self.assertRegex(s.log(), r'postmaster nobody@example\.test is not a deliverable address')
        r, _ = self.send_to(s, 'postmaster')
        self.assertReply(r, 250)
        self.assertEqual(len(s.messages(ALICE)), 1)
        self.assertRegex(s.log(), r'postmaster address not deliverable postmaster=nobody@example\.test')

    def test_postmaster_config_syntax(self):
        s = self.new_server(start=False, users=False, server={'postmaster': 'not an address'})
        p = s.cli('check')
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, r'buzon\.ini:\d+: postmaster .*not an address')


if __name__ == '__main__':
    unittest.main(verbosity=2)
