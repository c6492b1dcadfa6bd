#!/usr/bin/python3
"""Several IMAP sessions change one mailbox at once while mail arrives.

The sessions share the folder's message list in the server (a view held
while the index is unchanged, storage/mailbox.c), each change moves the
folder's stamp, and every session hears the others' changes. Four imaplib
clients in threads STORE, EXPUNGE, APPEND and NOOP at random while SMTP
delivers; afterwards every session, a fresh one and the Maildir's file
names must agree on what the mailbox holds. Bounded: a fixed number of
operations per client, loopback only.
"""

import imaplib
import os
import random
import re
import smtplib
import threading
import unittest

from buzon_test import ALICE, IMAP_LISTENERS, PASSWORD, BuzonTestCase, make_message, scaled

SENDER = 'sender@client.example.org'
FLAGS = ['\\Seen', '\\Flagged', '\\Answered', '\\Draft', 'Work', 'Later']
UID_RE = re.compile(r'\bUID (\d+)')
FLAGS_RE = re.compile(r'\bFLAGS \(([^)]*)\)')
OPS = 60


def uid_flags(c):
    """{uid: set of flags (without \\Recent)} of the selected mailbox, after a NOOP."""
    typ, _ = c.noop()
    assert typ == 'OK'
    # imaplib keeps every unsolicited FETCH response since the last command
    # that took them (SEARCH, APPEND and NOOP do not), messages expunged
    # since among them: only what FETCH itself answers counts
    c.untagged_responses.clear()
    typ, data = c.fetch('1:*', '(UID FLAGS)')
    assert typ == 'OK', data
    out = {}
    for d in data:
        if d is None:
            continue
        u, f = UID_RE.search(d.decode()), FLAGS_RE.search(d.decode())
        assert u and f, d
        assert int(u.group(1)) not in out, d
        out[int(u.group(1))] = set(x for x in f.group(1).split() if x != '\\Recent')
    return out


def maildir_flags(info):
    letters = {'S': '\\Seen', 'F': '\\Flagged', 'R': '\\Answered', 'D': '\\Draft', 'T': '\\Deleted'}
    return set(letters[ch] for ch in info if ch in letters)


class Concurrency(BuzonTestCase):

    def test_sessions_and_deliveries_agree(self):
        s = self.new_server(listeners=IMAP_LISTENERS)
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(30)) as smtp:
            for i in range(30):
                self.assertEqual(smtp.sendmail(SENDER, [ALICE], make_message('start %d' % i)), {})
        ihost, iport = s.addr('imap')
        clients = []
        for _ in range(4):
            c = imaplib.IMAP4(ihost, iport, timeout=scaled(60))
            c.login(ALICE, PASSWORD)
            typ, _ = c.select('INBOX')
            self.assertEqual(typ, 'OK')
            clients.append(c)
        errors = []
        appended = [0] * len(clients)

        def worker(n, c):
            rnd = random.Random(1000 + n)
            try:
                for _ in range(OPS):
                    op = rnd.random()
                    typ, data = c.search(None, 'ALL')
                    assert typ == 'OK', data
                    seqs = data[0].split()
                    if op < 0.45 and seqs:
                        seq = rnd.choice(seqs).decode()
                        flag = rnd.choice(FLAGS)
                        typ, data = c.store(seq, rnd.choice(['+FLAGS', '-FLAGS']), '(%s)' % flag)
                        # a message another session expunged meanwhile: NO, as Dovecot
                        assert typ == 'OK' or data[0].startswith(b'[EXPUNGEISSUED]'), data
                    elif op < 0.55 and seqs:
                        typ, data = c.store(rnd.choice(seqs).decode(), '+FLAGS.SILENT', '(\\Deleted)')
                        assert typ == 'OK' or data[0].startswith(b'[EXPUNGEISSUED]'), data
                        typ, data = c.expunge()
                        assert typ == 'OK', data
                    elif op < 0.70:
                        msg = make_message('append %d' % n, b'appended\r\n')
                        typ, data = c.append('INBOX', '(\\Seen Work)', None, msg)
                        assert typ == 'OK', data
                        appended[n] += 1
                    elif op < 0.80 and seqs:
                        typ, data = c.uid('STORE', '1:*', '+FLAGS.SILENT', '(Later)')
                        assert typ == 'OK' or data[0].startswith(b'[EXPUNGEISSUED]'), data
                    else:
                        typ, data = c.noop()
                        assert typ == 'OK', data
            except Exception as e:      # reported by the main thread
                errors.append('client %d: %r' % (n, e))

        def deliverer():
            try:
                with smtplib.SMTP(host, port, timeout=scaled(30)) as smtp:
                    for i in range(40):
                        assert smtp.sendmail(SENDER, [ALICE], make_message('during %d' % i)) == {}
            except Exception as e:
                errors.append('smtp: %r' % e)

        threads = [threading.Thread(target=worker, args=(n, c)) for n, c in enumerate(clients)]
        threads.append(threading.Thread(target=deliverer))
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(300))
            self.assertFalse(t.is_alive(), 'a client hung')
        self.assertEqual(errors, [])

        # Every session, after a NOOP, sees the same messages with the same flags
        views = [uid_flags(c) for c in clients]
        fresh = imaplib.IMAP4(ihost, iport, timeout=scaled(60))
        fresh.login(ALICE, PASSWORD)
        fresh.select('INBOX')
        views.append(uid_flags(fresh))
        for k, v in enumerate(views[1:], 1):
            diff = {u: (views[0].get(u), v.get(u)) for u in set(v) | set(views[0]) if views[0].get(u) != v.get(u)}
            self.assertEqual(diff, {}, 'session %d differs from session 0 (uid: (0, %d))' % (k, k))
        uids = sorted(views[0])
        self.assertEqual(len(uids), len(set(uids)))

        # ... and the Maildir agrees: one file per message, the flags in its name
        md = s.maildir(ALICE)
        files = [('new', n) for n in os.listdir(os.path.join(md, 'new'))] + \
                [('cur', n) for n in os.listdir(os.path.join(md, 'cur'))]
        self.assertEqual(len(files), len(uids))
        by_name = sorted(maildir_flags(n.split(':2,', 1)[1]) if ':2,' in n else set() for _, n in files)
        system = [set(f for f in v if f.startswith('\\')) for v in views[0].values()]
        self.assertEqual(sorted(map(sorted, by_name)), sorted(map(sorted, system)))

        # every message that came in (30 + 40 by SMTP, the APPENDs) got one
        # UID of its own: UIDNEXT counts them all, expunged ones included
        typ, data = fresh.status('INBOX', '(MESSAGES UIDNEXT)')
        self.assertEqual(typ, 'OK')
        m = re.search(rb'MESSAGES (\d+) UIDNEXT (\d+)', data[0])
        self.assertEqual(int(m.group(1)), len(uids))
        self.assertEqual(int(m.group(2)), 1 + 70 + sum(appended), appended)
        self.assertGreater(int(m.group(2)), uids[-1])
        for c in clients + [fresh]:
            c.logout()


if __name__ == '__main__':
    unittest.main()
