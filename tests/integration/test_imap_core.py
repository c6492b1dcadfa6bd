"""IMAP core (issue 4): the real binary driven over raw sockets, octet by
octet: greeting and CAPABILITY, LOGIN and AUTHENTICATE PLAIN, states,
SELECT/EXAMINE responses, UIDVALIDITY and UIDs, mail dropped into new/ by
another program, two sessions on one mailbox, IDLE latency after an SMTP
delivery, the limits (literals, idle timeout, bad commands, failed logins,
line length) and a graceful stop.

Mail goes in over SMTP (smtplib) like in production; the IMAP side is a
byte-exact client (RawIMAP) so that every reply line can be compared with
what RFC 3501 fixes.
"""

import base64
import os
import re
import signal
import smtplib
import statistics
import time
import unittest

from buzon_test import ALICE, as_service_user, IMAP_LISTENERS, PASSWORD, BuzonTestCase, make_message, scaled

BOB = 'bob@example.test'
SENDER = 'sender@client.example.org'

# Everything issue 4 says CAPABILITY advertises (APPENDLIMIT carries =N).
REQUIRED_CAPS = ['IMAP4rev1', 'IDLE', 'UIDPLUS', 'MOVE', 'NAMESPACE', 'ID', 'ENABLE', 'LITERAL+', 'SASL-IR',
                 'UNSELECT', 'CHILDREN', 'SPECIAL-USE', 'CONDSTORE', 'QRESYNC', 'ESEARCH', 'LIST-EXTENDED',
                 'LIST-STATUS', 'QUOTA']
SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft']


def caps_of(line):
    """The capability words of "* CAPABILITY ..." or "... [CAPABILITY ...] ..."."""
    m = re.search(r'\[CAPABILITY ([^\]]*)\]', line) or re.match(r'^\* CAPABILITY (.*)$', line)
    assert m, line
    return m.group(1).split()


def expunges(lines):
    """The numbers of the "* n EXPUNGE" lines, in order."""
    return [int(l.split()[1]) for l in lines if re.match(r'^\* \d+ EXPUNGE$', l)]


def find(lines, regex):
    """The first line matching regex (re.match), or None."""
    for l in lines:
        m = re.match(regex, l)
        if m:
            return m
    return None


class IMAPTestCase(BuzonTestCase):
    """Servers with an SMTP listener "mx" and an IMAP listener "imap"."""

    def imap_server(self, imap=None, server=None, start=True, auth=None):
        return self.new_server(start=start, server=server, imap=imap, listeners=IMAP_LISTENERS, auth=auth)

    def raw(self, s, **kw):
        c = s.connect_imap(**kw)
        self.addCleanup(c.close)
        return c

    def session(self, s, user=ALICE, mailbox=None):
        c = self.raw(s)
        c.login(user)
        if mailbox:
            c.ok('SELECT %s' % mailbox)
        return c

    def send(self, s, msg, rcpts=(ALICE,)):
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(30)) as c:
            refused = c.sendmail(SENDER, list(rcpts), msg)
        self.assertEqual(refused, {})

    def deliver(self, s, count, rcpts=(ALICE,), subject='msg'):
        host, port = s.addr('mx')
        sent = []
        with smtplib.SMTP(host, port, timeout=scaled(30)) as c:
            for i in range(count):
                m = make_message('%s %d' % (subject, i), b'body %d\r\n' % i)
                self.assertEqual(c.sendmail(SENDER, list(rcpts), m), {})
                sent.append(m)
        return sent

    def select_info(self, untagged):
        """The SELECT/EXAMINE untagged responses as a dict."""
        info = {}
        for l in untagged:
            m = re.match(r'^\* (\d+) (EXISTS|RECENT)$', l)
            if m:
                info[m.group(2)] = int(m.group(1))
                continue
            m = re.match(r'^\* FLAGS \((.*)\)$', l)
            if m:
                info['FLAGS'] = m.group(1).split()
                continue
            m = re.match(r'^\* OK \[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]', l)
            if m:
                info[m.group(1)] = int(m.group(2))
                continue
            m = re.match(r'^\* OK \[PERMANENTFLAGS \((.*)\)\]', l)
            if m:
                info['PERMANENTFLAGS'] = m.group(1).split()
        return info

    def uids(self, c):
        """FETCH 1:* (UID): the UIDs in sequence order."""
        untagged, tagged = c.ok('FETCH 1:* (UID)')
        out = []
        for l in untagged:
            m = re.match(r'^\* (\d+) FETCH \(UID (\d+)\)$', l)
            if m:
                self.assertEqual(int(m.group(1)), len(out) + 1, untagged)
                out.append(int(m.group(2)))
        return out


class GreetingAndLogin(IMAPTestCase):

    def test_greeting_and_capability(self):
        s = self.imap_server()
        c = self.raw(s)
        g = c.greeting.decode('latin-1')
        self.assertTrue(g.startswith('* OK '), g)
        self.assertIn('IMAP4rev1', caps_of(g))
        untagged, tagged = c.ok('CAPABILITY')
        self.assertEqual(len(untagged), 1, untagged)
        caps = caps_of(untagged[0])
        for cap in REQUIRED_CAPS + ['AUTH=PLAIN']:
            self.assertIn(cap, caps)
        self.assertTrue(any(re.match(r'^APPENDLIMIT=\d+$', x) for x in caps), caps)
        self.assertNotIn('LOGINDISABLED', caps)
        # after login: the tagged OK carries the capabilities, all still there
        untagged, tagged = c.login()
        caps = caps_of(tagged)
        for cap in REQUIRED_CAPS:
            self.assertIn(cap, caps)
        untagged, tagged = c.ok('CAPABILITY')
        for cap in REQUIRED_CAPS:
            self.assertIn(cap, caps_of(untagged[0]))
        untagged, tagged = c.command('LOGOUT')
        self.assertEqual(untagged[0][:6], '* BYE ')
        self.assertRegex(tagged, r'^a\d+ OK\b')
        self.assertTrue(c.closed_within(scaled(5)))

    def test_login_good_and_bad(self):
        s = self.imap_server()
        c = self.raw(s)
        _, bad_pw = c.command('LOGIN "%s" "wrong password"' % ALICE)
        self.assertRegex(bad_pw, r'^a\d+ NO \[AUTHENTICATIONFAILED\] ')
        c2 = self.raw(s)
        _, unknown = c2.command('LOGIN "nobody@example.test" "%s"' % PASSWORD)
        # the same reply, apart from the tag
        self.assertEqual(bad_pw.split(' ', 1)[1], unknown.split(' ', 1)[1])
        # a good login on the first connection; literals work for both arguments
        c.send('a100 LOGIN {%d}\r\n' % len(ALICE))
        self.assertTrue(c.line().startswith(b'+'))
        c.send('%s {%d+}\r\n%s\r\n' % (ALICE, len(PASSWORD), PASSWORD))
        _, tagged = c.until_tagged('a100')
        self.assertRegex(tagged, r'^a100 OK\b')
        # LOGIN in the authenticated state is BAD
        _, tagged = c.command('LOGIN "%s" "%s"' % (ALICE, PASSWORD))
        self.assertRegex(tagged, r'^a\d+ BAD\b')
        # user names are case-insensitive addresses
        c3 = self.raw(s)
        c3.login(ALICE.upper())

    def test_authenticate_plain(self):
        s = self.imap_server()
        good = base64.b64encode(b'\0' + ALICE.encode() + b'\0' + PASSWORD.encode()).decode()
        bad = base64.b64encode(b'\0' + ALICE.encode() + b'\0nope').decode()
        unknown = base64.b64encode(b'\0ghost@example.test\0' + PASSWORD.encode()).decode()
        # SASL-IR: the response on the command line
        c = self.raw(s)
        _, tagged = c.ok('AUTHENTICATE PLAIN ' + good)
        self.assertIn('[CAPABILITY ', tagged)
        c.ok('SELECT INBOX')
        # continuation: "+ " then the response line
        c = self.raw(s)
        c.send('x1 AUTHENTICATE PLAIN\r\n')
        cont = c.line()
        self.assertTrue(cont == b'+' or cont.startswith(b'+ '), cont)
        c.send(good + '\r\n')
        _, tagged = c.until_tagged('x1')
        self.assertRegex(tagged, r'^x1 OK\b')
        # cancelled with "*": BAD (RFC 3501 6.2.2)
        c = self.raw(s)
        c.send('x2 AUTHENTICATE PLAIN\r\n')
        self.assertTrue(c.line().startswith(b'+'))
        c.send('*\r\n')
        _, tagged = c.until_tagged('x2')
        self.assertRegex(tagged, r'^x2 BAD\b')
        # wrong password and unknown user: the same NO [AUTHENTICATIONFAILED]
        _, t1 = c.command('AUTHENTICATE PLAIN ' + bad)
        c = self.raw(s)
        _, t2 = c.command('AUTHENTICATE PLAIN ' + unknown)
        self.assertRegex(t1, r'^a\d+ NO \[AUTHENTICATIONFAILED\] ')
        self.assertEqual(t1.split(' ', 1)[1], t2.split(' ', 1)[1])
        # an unknown mechanism is NO (or BAD), never OK
        _, tagged = c.command('AUTHENTICATE CRAM-MD5')
        self.assertRegex(tagged, r'^a\d+ (NO|BAD)\b')

    def test_commands_in_the_wrong_state(self):
        s = self.imap_server()
        c = self.raw(s)
        for cmd in ('SELECT INBOX', 'EXAMINE INBOX', 'LIST "" "*"', 'CREATE foo', 'STATUS INBOX (MESSAGES)',
                    'APPEND INBOX {1+}\r\nx', 'FETCH 1 FLAGS', 'EXPUNGE', 'CLOSE', 'IDLE'):
            _, tagged = c.command(cmd)
            self.assertRegex(tagged, r'^a\d+ BAD\b', cmd)
        c = self.session(s)
        for cmd in ('FETCH 1 FLAGS', 'STORE 1 +FLAGS (\\Seen)', 'SEARCH ALL', 'EXPUNGE', 'CLOSE',
                    'UID FETCH 1 FLAGS', 'COPY 1 INBOX', 'UNSELECT', 'AUTHENTICATE PLAIN'):
            _, tagged = c.command(cmd)
            self.assertRegex(tagged, r'^a\d+ BAD\b', cmd)
        # unknown commands and a missing tag
        _, tagged = c.command('FROBNICATE')
        self.assertRegex(tagged, r'^a\d+ BAD\b')
        c.send('tagonly\r\n')
        self.assertRegex(c.line().decode(), r'^(tagonly|\*) BAD\b')
        c.ok('NOOP')


class SelectAndUids(IMAPTestCase):

    def test_select_and_examine_responses(self):
        s = self.imap_server()
        self.deliver(s, 3)
        c = self.session(s)
        untagged, tagged = c.ok('SELECT INBOX')
        self.assertRegex(tagged, r'^a\d+ OK \[READ-WRITE\] ')
        info = self.select_info(untagged)
        self.assertEqual(info.get('EXISTS'), 3, untagged)
        self.assertEqual(info.get('RECENT'), 3, untagged)
        self.assertEqual(sorted(info.get('FLAGS', [])), sorted(SYSTEM_FLAGS), untagged)
        self.assertIn('\\*', info.get('PERMANENTFLAGS', []), untagged)
        for f in SYSTEM_FLAGS:
            self.assertIn(f, info['PERMANENTFLAGS'])
        self.assertGreater(info.get('UIDVALIDITY', 0), 0, untagged)
        self.assertEqual(info.get('UIDNEXT'), 4, untagged)
        self.assertGreater(info.get('HIGHESTMODSEQ', 0), 0, untagged)
        # each response once
        for regex in (r'^\* \d+ EXISTS$', r'^\* \d+ RECENT$', r'^\* FLAGS ', r'^\* OK \[UIDVALIDITY ',
                      r'^\* OK \[UIDNEXT ', r'^\* OK \[PERMANENTFLAGS '):
            self.assertEqual(sum(1 for l in untagged if re.match(regex, l)), 1, (regex, untagged))
        # \Recent went to this session: a second one sees 0 RECENT
        c2 = self.session(s)
        untagged2, tagged2 = c2.ok('EXAMINE INBOX')
        self.assertRegex(tagged2, r'^a\d+ OK \[READ-ONLY\] ')
        info2 = self.select_info(untagged2)
        self.assertEqual(info2.get('EXISTS'), 3)
        self.assertEqual(info2.get('RECENT'), 0, untagged2)
        self.assertEqual(info2.get('UIDVALIDITY'), info['UIDVALIDITY'])
        self.assertEqual(info2.get('UIDNEXT'), 4)
        # SELECT (CONDSTORE) and a failing SELECT (which deselects)
        untagged, tagged = c2.ok('SELECT INBOX (CONDSTORE)')
        self.assertIn('HIGHESTMODSEQ', self.select_info(untagged))
        _, tagged = c2.command('SELECT "no such folder"')
        self.assertRegex(tagged, r'^a\d+ NO\b')
        _, tagged = c2.command('EXPUNGE')
        self.assertRegex(tagged, r'^a\d+ BAD\b', 'a failed SELECT leaves the authenticated state')
        # the mailbox name INBOX is case-insensitive
        untagged, _ = c2.ok('EXAMINE inbox')
        self.assertEqual(self.select_info(untagged).get('EXISTS'), 3)
        # CLOSE in EXAMINE does not expunge; UNSELECT leaves the mailbox
        c2.ok('CLOSE')
        c2.ok('SELECT INBOX')
        c2.ok('UNSELECT')
        _, tagged = c2.command('NOOP')
        self.assertRegex(tagged, r'^a\d+ OK\b')

    def test_uidvalidity_stable_across_restart(self):
        s = self.imap_server()
        self.deliver(s, 2)
        c = self.session(s)
        info = self.select_info(c.ok('SELECT INBOX')[0])
        c.close()
        self.assertEqual(s.stop(), 0)
        s.start()
        c = self.session(s)
        info2 = self.select_info(c.ok('SELECT INBOX')[0])
        self.assertEqual(info2['UIDVALIDITY'], info['UIDVALIDITY'])
        self.assertEqual(info2['UIDNEXT'], info['UIDNEXT'])
        self.assertEqual(info2['EXISTS'], 2)
        self.deliver(s, 1)
        info3 = self.select_info(c.ok('SELECT INBOX')[0])
        self.assertEqual(info3['UIDVALIDITY'], info['UIDVALIDITY'])
        self.assertEqual(info3['UIDNEXT'], info['UIDNEXT'] + 1)

    def test_uids_ascending_never_reused(self):
        s = self.imap_server()
        self.deliver(s, 3)
        c = self.session(s, mailbox='INBOX')
        self.assertEqual(self.uids(c), [1, 2, 3])
        # expunge the last message (the highest UID), then deliver again
        c.ok('STORE 3 +FLAGS.SILENT (\\Deleted)')
        untagged, _ = c.ok('EXPUNGE')
        self.assertEqual(expunges(untagged), [3])
        c.ok('STORE 1 +FLAGS.SILENT (\\Deleted)')
        untagged, _ = c.ok('EXPUNGE')
        self.assertEqual(expunges(untagged), [1])
        self.deliver(s, 2)
        untagged, _ = c.ok('NOOP')
        self.assertIn('* 3 EXISTS', untagged)
        self.assertEqual(self.uids(c), [2, 4, 5])
        # the same after a restart, and UIDNEXT agrees
        c.close()
        self.assertEqual(s.stop(), 0)
        s.start()
        self.deliver(s, 1)
        c = self.session(s)
        info = self.select_info(c.ok('SELECT INBOX')[0])
        self.assertEqual(info['UIDNEXT'], 7)
        self.assertEqual(self.uids(c), [2, 4, 5, 6])
        # UID EXPUNGE (UIDPLUS) removes only the UIDs given
        c.ok('STORE 1:* +FLAGS.SILENT (\\Deleted)')
        untagged, _ = c.ok('UID EXPUNGE 4')
        self.assertEqual(expunges(untagged), [2])
        self.assertEqual(self.uids(c), [2, 5, 6])


class Changes(IMAPTestCase):

    def drop_into_new(self, s, user, msg, name=None):
        md = s.maildir(user)
        name = name or '%d.M%dP%d.otherprogram' % (time.time(), time.time_ns() % 1000000, os.getpid())
        tmp = os.path.join(md, 'tmp', name)
        with open(tmp, 'wb') as f:
            f.write(msg)
        as_service_user(tmp)
        os.rename(tmp, os.path.join(md, 'new', name))

    def test_file_dropped_into_new_seen_at_noop(self):
        s = self.imap_server()
        self.deliver(s, 1)
        c = self.session(s, mailbox='INBOX')
        untagged, _ = c.ok('NOOP')
        self.assertNotIn('* 2 EXISTS', untagged)
        self.drop_into_new(s, ALICE, make_message('dropped', b'from another program\n').replace(b'\r\n', b'\n'))
        untagged, _ = c.ok('NOOP')
        self.assertIn('* 2 EXISTS', untagged)
        # and a fresh SELECT agrees
        c2 = self.session(s)
        self.assertEqual(self.select_info(c2.ok('SELECT INBOX')[0])['EXISTS'], 2)
        # a second drop, seen by the next SELECT of the first session too
        self.drop_into_new(s, ALICE, b'Subject: x\n\nthird\n')
        info = self.select_info(c.ok('SELECT INBOX')[0])
        self.assertEqual(info['EXISTS'], 3)
        self.assertEqual(info['UIDNEXT'], 4)

    def test_two_sessions_see_each_others_expunge(self):
        s = self.imap_server()
        self.deliver(s, 3)
        a = self.session(s, mailbox='INBOX')
        b = self.session(s, mailbox='INBOX')
        a.ok('STORE 2 +FLAGS.SILENT (\\Deleted)')
        untagged, _ = a.ok('EXPUNGE')
        self.assertEqual(expunges(untagged), [2])
        untagged, _ = b.ok('NOOP')
        self.assertIn('* 2 EXPUNGE', untagged)
        # a delivery: both see EXISTS
        self.deliver(s, 1)
        for c in (a, b):
            untagged, _ = c.ok('NOOP')
            self.assertIn('* 3 EXISTS', untagged)
        # a flag change by b reaches a as FETCH FLAGS
        b.ok('STORE 1 +FLAGS.SILENT (\\Flagged)')
        untagged, _ = a.ok('NOOP')
        self.assertTrue(any(re.match(r'^\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged', l) for l in untagged), untagged)
        # FETCH must not carry EXPUNGE (RFC 3501 7.4.1); the NOOP after does
        b.ok('STORE 3 +FLAGS.SILENT (\\Deleted)')
        b.ok('EXPUNGE')
        untagged, _ = a.ok('FETCH 1 (UID)')
        self.assertFalse([l for l in untagged if l.endswith(' EXPUNGE')], untagged)
        untagged, _ = a.ok('NOOP')
        self.assertIn('* 3 EXPUNGE', untagged)

    def test_idle_hears_delivery_fast(self):
        s = self.imap_server()
        self.deliver(s, 1)
        c = self.session(s, mailbox='INBOX')
        c.send('i1 IDLE\r\n')
        self.assertTrue(c.line().startswith(b'+'))
        host, port = s.addr('mx')
        delays = []
        with smtplib.SMTP(host, port, timeout=scaled(30)) as smtp:
            for i in range(7):
                m = make_message('idle %d' % i, b'idle\r\n')
                self.assertEqual(smtp.sendmail(SENDER, [ALICE], m), {})
                t0 = time.monotonic()
                c.settimeout(scaled(5))
                want = '* %d EXISTS' % (i + 2)
                while True:
                    l = c.line().decode('latin-1')
                    if l == want:
                        break
                    self.assertRegex(l, r'^\* (\d+ (EXISTS|RECENT|FETCH .*)|OK .*)$')
                delays.append(time.monotonic() - t0)
        c.send('DONE\r\n')
        _, tagged = c.until_tagged('i1')
        self.assertRegex(tagged, r'^i1 OK\b')
        delays.sort()
        med = statistics.median(delays)
        print('IDLE delivery latency (s): median %.4f max %.4f all %s' % (med, delays[-1],
                                                                      ['%.4f' % d for d in delays]))
        self.assertLess(med, 0.100, delays)
        self.assertLess(delays[-1], 0.500, delays)
        # IDLE again after DONE, and NOOP outside IDLE still works
        c.send('i2 IDLE\r\n')
        self.assertTrue(c.line().startswith(b'+'))
        c.send('DONE\r\n')
        _, tagged = c.until_tagged('i2')
        self.assertRegex(tagged, r'^i2 OK\b')
        # anything but DONE inside IDLE is BAD (and ends it)
        c.send('i3 IDLE\r\n')
        self.assertTrue(c.line().startswith(b'+'))
        c.send('NOOP\r\n')
        l = c.line().decode()
        self.assertRegex(l, r'^i3 BAD\b')
        c.ok('NOOP')


    def test_idle_hears_other_programs(self):
        # Files changed by something other than buzon (another delivery agent,
        # another Maildir reader) reach a session in IDLE without a NOOP.
        s = self.imap_server()
        self.deliver(s, 1)
        c = self.session(s, mailbox='INBOX')
        c.send('i1 IDLE\r\n')
        self.assertTrue(c.line().startswith(b'+'))
        c.settimeout(scaled(10))
        time.sleep(0.5)   # whatever the delivery above stirred up has settled
        t0 = time.monotonic()
        self.drop_into_new(s, ALICE, b'Subject: dropped\n\nby another program\n')
        lines = [c.line().decode()]
        while lines[-1] != '* 2 EXISTS':
            self.assertRegex(lines[-1], r'^\* (\d+ (RECENT|FETCH .*)|OK .*)$')
            lines.append(c.line().decode())
        print('IDLE heard a dropped file after %.3f s' % (time.monotonic() - t0))
        # another reader marks the first message read: new/NAME -> cur/NAME:2,S
        md = s.maildir(ALICE)
        first = [n for n in os.listdir(os.path.join(md, 'new')) if not n.endswith('otherprogram')][0]
        os.rename(os.path.join(md, 'new', first), os.path.join(md, 'cur', first + ':2,S'))
        l = c.line().decode()
        while not l.startswith('* 1 FETCH'):
            self.assertRegex(l, r'^\* (\d+ (RECENT|EXISTS)|OK .*)$')
            l = c.line().decode()
        self.assertRegex(l, r'^\* 1 FETCH \(FLAGS \(\\Seen( \\Recent)?\) UID 1\)$')
        c.send('DONE\r\n')
        _, tagged = c.until_tagged('i1')
        self.assertRegex(tagged, r'^i1 OK\b')

    def test_idle_hears_other_programs_in_a_folder_made_anew(self):
        # The folder's watch outlives its last watcher for a while; a folder
        # deleted and created again must get a watch on the new directory.
        s = self.imap_server()
        a = self.session(s)
        b = self.session(s)
        a.ok('CREATE Work')
        a.ok('SELECT Work')
        a.ok('SELECT INBOX')          # Work's watch now lingers
        b.ok('DELETE Work')
        b.ok('CREATE Work')
        a.ok('SELECT Work')
        a.send('i1 IDLE\r\n')
        self.assertTrue(a.line().startswith(b'+'))
        a.settimeout(scaled(10))
        time.sleep(0.5)   # what DELETE and CREATE stirred up has been published
        md = s.maildir(ALICE, 'Work')
        name = '%d.M1P%d.otherprogram' % (time.time(), os.getpid())
        with open(os.path.join(md, 'tmp', name), 'wb') as f:
            f.write(b'Subject: into Work\n\nby another program\n')
        as_service_user(os.path.join(md, 'tmp', name))
        os.rename(os.path.join(md, 'tmp', name), os.path.join(md, 'new', name))
        l = a.line().decode()
        while l != '* 1 EXISTS':
            self.assertRegex(l, r'^\* (\d+ (RECENT|FETCH .*)|OK .*)$')
            l = a.line().decode()
        a.send('DONE\r\n')
        _, tagged = a.until_tagged('i1')
        self.assertRegex(tagged, r'^i1 OK\b')

    def test_idle_hears_other_sessions(self):
        s = self.imap_server()
        self.deliver(s, 3)
        idler = self.session(s, mailbox='INBOX')
        other = self.session(s, mailbox='INBOX')
        idler.send('i1 IDLE\r\n')
        self.assertTrue(idler.line().startswith(b'+'))
        idler.settimeout(scaled(5))
        # a flag change: FETCH FLAGS during IDLE
        other.ok('STORE 1 +FLAGS.SILENT (\\Flagged)')
        l = idler.line().decode()
        self.assertRegex(l, r'^\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged')
        # an expunge: EXPUNGE during IDLE
        other.ok('STORE 2 +FLAGS.SILENT (\\Deleted)')
        lines = [idler.line().decode()]
        other.ok('EXPUNGE')
        while '* 2 EXPUNGE' not in lines:
            lines.append(idler.line().decode())
        self.assertFalse([l for l in lines if re.match(r'^i1 ', l)], lines)
        idler.send('DONE\r\n')
        untagged, tagged = idler.until_tagged('i1')
        self.assertRegex(tagged, r'^i1 OK\b')
        untagged, _ = idler.ok('NOOP')
        self.assertFalse(expunges(untagged), 'the EXPUNGE must not come twice: %r' % untagged)
        self.assertEqual(self.uids(idler), [1, 3])

    def test_qresync_vanished(self):
        s = self.imap_server()
        self.deliver(s, 4)
        a = self.session(s)
        untagged, _ = a.ok('ENABLE QRESYNC')
        self.assertTrue(any(re.match(r'^\* ENABLED .*\bQRESYNC\b', l) for l in untagged), untagged)
        info = self.select_info(a.ok('SELECT INBOX')[0])
        b = self.session(s, mailbox='INBOX')
        b.ok('STORE 2 +FLAGS.SILENT (\\Deleted)')
        b.ok('EXPUNGE')
        # under QRESYNC the change is VANISHED, never EXPUNGE (RFC 7162 3.2.10)
        untagged, _ = a.ok('NOOP')
        self.assertIn('* VANISHED 2', untagged)
        self.assertFalse(expunges(untagged), untagged)
        # a reselect with the old state: VANISHED (EARLIER) and the changed flags
        b.ok('STORE 1 +FLAGS.SILENT (\\Flagged)')
        b.ok('UID STORE 3 +FLAGS.SILENT (\\Deleted)')
        b.ok('EXPUNGE')
        a.ok('UNSELECT')
        untagged, tagged = a.ok('SELECT INBOX (QRESYNC (%d %d))' % (info['UIDVALIDITY'], info['HIGHESTMODSEQ']))
        vanished = [l for l in untagged if l.startswith('* VANISHED')]
        self.assertEqual(len(vanished), 1, untagged)
        m = re.match(r'^\* VANISHED \(EARLIER\) (\S+)$', vanished[0])
        self.assertTrue(m, vanished)
        got = set()
        for part in m.group(1).split(','):
            lo, _, hi = part.partition(':')
            got.update(range(int(lo), int(hi or lo) + 1))
        self.assertEqual(got, {2, 3})
        self.assertTrue(any(re.match(r'^\* 1 FETCH \(.*UID 1\b.*\\Flagged', l) or
                            re.match(r'^\* 1 FETCH \(.*\\Flagged.*UID 1\b', l) for l in untagged), untagged)
        self.assertEqual(self.select_info(untagged)['EXISTS'], 2)

    def test_namespace_id_enable(self):
        s = self.imap_server()
        c = self.raw(s)
        _, tagged = c.command('ENABLE CONDSTORE')
        self.assertRegex(tagged, r'^a\d+ BAD\b', 'ENABLE needs the authenticated state')
        untagged, _ = c.ok('ID NIL')
        self.assertTrue(re.match(r'^\* ID (NIL|\(.*\))$', untagged[0]), untagged)
        c.login()
        untagged, _ = c.ok('NAMESPACE')
        m = re.match(r'^\* NAMESPACE \(\("([^"]*)" "([./])"\)\) NIL NIL$', untagged[0])
        self.assertTrue(m, untagged)
        sep = m.group(2)
        # LIST "" "" gives the same separator
        untagged, _ = c.ok('LIST "" ""')
        self.assertEqual(untagged, ['* LIST (\\Noselect) "%s" ""' % sep])
        untagged, _ = c.ok('ENABLE CONDSTORE')
        self.assertEqual(untagged, ['* ENABLED CONDSTORE'])
        # a second ENABLE of the same extension lists nothing (RFC 5161 3.1)
        untagged, _ = c.ok('ENABLE CONDSTORE')
        self.assertEqual([l for l in untagged if 'CONDSTORE' in l], [])
        untagged, _ = c.ok('ENABLE X-UNKNOWN-EXTENSION')
        self.assertEqual([l for l in untagged if 'X-UNKNOWN' in l], [])


class Limits(IMAPTestCase):

    def test_literal_over_max_literal(self):
        s = self.imap_server(imap={'max_literal': '2k'})
        c = self.session(s)
        untagged, tagged = c.ok('CAPABILITY')
        self.assertIn('APPENDLIMIT=2048', caps_of(untagged[0]))
        # synchronizing: NO [TOOBIG] before the data, no "+"
        c.send('t1 APPEND INBOX {3000}\r\n')
        l = c.line().decode()
        self.assertRegex(l, r'^t1 NO \[TOOBIG\]')
        c.ok('NOOP')
        # a literal within the limit still works (needs APPEND)
        small = b'Subject: ok\r\n\r\nsmall\r\n'
        c.send('t2 APPEND INBOX {%d}\r\n' % len(small))
        self.assertTrue(c.line().startswith(b'+'))
        c.send(small + b'\r\n')
        _, tagged = c.until_tagged('t2')
        self.assertRegex(tagged, r'^t2 OK\b')
        # non-synchronizing over the limit: BYE and close
        c.send('t3 APPEND INBOX {3000+}\r\n')
        lines = c.lines_until_close()
        self.assertTrue(any(l.startswith('* BYE') for l in lines), lines)
        self.assertTrue(c.closed_within(scaled(5)))

    def test_idle_timeout(self):
        s = self.imap_server(imap={'idle_timeout': '2s'})
        c = self.raw(s)
        t0 = time.monotonic()
        lines = c.lines_until_close()
        took = time.monotonic() - t0
        self.assertTrue(lines and lines[-1].startswith('* BYE'), lines)
        self.assertGreaterEqual(took, 1.5)
        self.assertLess(took, scaled(6))
        # also once logged in and selected
        c = self.session(s, mailbox='INBOX')
        lines = c.lines_until_close()
        self.assertTrue(lines and lines[-1].startswith('* BYE'), lines)

    def test_too_many_bad_commands(self):
        s = self.imap_server(imap={'max_bad_commands': '3'})
        c = self.raw(s)
        for i in range(2):
            _, tagged = c.command('BOGUS%d' % i)
            self.assertRegex(tagged, r'^a\d+ BAD\b')
        c.send('a9 BOGUS\r\n')
        lines = c.lines_until_close()
        self.assertRegex(lines[0], r'^a9 BAD\b')
        self.assertTrue(lines[-1].startswith('* BYE'), lines)
        self.assertTrue(c.closed_within(scaled(5)))

    def test_failed_logins_slowed(self):
        s = self.imap_server(auth={'auth_delay_base': '1s', 'auth_delay_free': '1'})
        times = []
        for i in range(3):
            c = self.raw(s, timeout=30)
            t0 = time.monotonic()
            _, tagged = c.command('LOGIN "%s" "wrong%d"' % (ALICE, i))
            times.append(time.monotonic() - t0)
            self.assertRegex(tagged, r'^a\d+ NO \[AUTHENTICATIONFAILED\] ')
            c.close()
        self.assertLess(times[0], scaled(0.5), times)
        self.assertGreaterEqual(times[2], 1.0, times)

    def test_too_many_auth_failures(self):
        # max_auth_failures (3) in one session: BYE (delays off to be quick)
        s = self.imap_server(imap={'max_auth_failures': '3'}, auth={'auth_delay_base': '0'})
        c = self.raw(s)
        for i in range(3):
            c.send('b%d LOGIN "%s" "bad"\r\n' % (i, BOB))
        lines = c.lines_until_close()
        self.assertEqual(sum(1 for l in lines if re.match(r'^b\d NO \[AUTHENTICATIONFAILED\]', l)), 3, lines)
        self.assertTrue(lines[-1].startswith('* BYE'), lines)

    def test_line_too_long(self):
        s = self.imap_server(imap={'max_line': '1024'})
        c = self.session(s)
        c.send('t1 NOOP ' + 'x' * 4000 + '\r\n')
        l = c.line().decode('latin-1')
        self.assertRegex(l, r'^(t1|\*) BAD\b')
        # the server lives on
        c2 = self.session(s, mailbox='INBOX')
        c2.ok('NOOP')

    def test_sigterm_says_bye(self):
        s = self.imap_server()
        plain = self.raw(s)
        selected = self.session(s, mailbox='INBOX')
        idler = self.session(s, mailbox='INBOX')
        idler.send('i1 IDLE\r\n')
        self.assertTrue(idler.line().startswith(b'+'))
        s.proc.send_signal(signal.SIGTERM)
        for c in (plain, selected, idler):
            lines = c.lines_until_close()
            self.assertTrue(any(l.startswith('* BYE') for l in lines), lines)
        self.assertEqual(s.wait_exit(scaled(20)), 0)


if __name__ == '__main__':
    unittest.main(verbosity=2)
