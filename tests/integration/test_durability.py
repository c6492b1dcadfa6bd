"""Durability: SIGKILL the server while deliveries are in flight; after a
restart every message that got 250 is in new/ byte-exact, nothing partial is
in new/, and tmp/ is swept."""

import os
import random
import smtplib
import threading
import unittest

from buzon_test import BuzonTestCase, make_message, split_delivered, stored_form, scaled, RawSMTP, dot_stuff

USERS = ['alice@example.test', 'bob@example.test', 'carol@example.test', 'dave@example.test']
SENDER = 'sender@client.example.org'
N_MESSAGES = 200
N_THREADS = 8
KILL_AFTER = 60


def build_messages():
    rng = random.Random(20261128)
    alphabet = b'abcdefghijklmnopqrstuvwxyz0123456789 .,-'
    pool = bytes(rng.choice(alphabet) for _ in range(1 << 16))
    msgs = {}
    for i in range(N_MESSAGES):
        size = rng.choice([300, 3000, 30000, 120000, 400000])
        lines = []
        total = 0
        while total < size:
            n = rng.randint(0, 200)
            start = rng.randrange(len(pool) - n)
            line = pool[start:start + n]
            if rng.random() < 0.05:
                line = b'.' + line   # dot-stuffed on the wire, unstuffed when stored
            lines.append(line)
            total += len(line) + 2
        body = b'\r\n'.join(lines) + b'\r\n'
        msgid = '<durability-%d@client.example.org>' % i
        rcpts = rng.sample(USERS, 2 if rng.random() < 0.25 else 1)
        msgs[msgid] = (rcpts, make_message('durability %d' % i, body, msgid=msgid))
    return msgs


def message_id(stored):
    head = stored.split(b'\n\n', 1)[0]
    for line in head.split(b'\n'):
        if line.lower().startswith(b'message-id:'):
            return line.split(b':', 1)[1].strip().decode()
    return None


class Durability(BuzonTestCase):

    def test_sigkill_during_deliveries(self):
        s = self.new_server(server={'max_connections_per_ip': 100, 'max_connections': 200})
        msgs = build_messages()
        order = list(msgs.items())
        addr = s.addr()
        acked = {}
        errors = []
        lock = threading.Lock()
        enough = threading.Event()
        killed = threading.Event()

        def worker(k):
            cl = None
            for msgid, (rcpts, msg) in order[k::N_THREADS]:
                if killed.is_set():
                    break
                try:
                    if cl is None:
                        cl = smtplib.SMTP(*addr, local_hostname='client.example.org',
                                          timeout=scaled(30))
                    refused = cl.sendmail(SENDER, rcpts, msg)
                except (smtplib.SMTPException, OSError) as e:
                    if not killed.is_set():
                        with lock:
                            errors.append('%s: %r' % (msgid, e))
                    break
                with lock:
                    if refused:
                        errors.append('%s: refused %r' % (msgid, refused))
                    else:
                        acked[msgid] = rcpts
                    if len(acked) >= KILL_AFTER:
                        enough.set()
            if cl is not None:
                try:
                    cl.close()
                except OSError:
                    pass

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(N_THREADS)]
        for t in threads:
            t.start()
        self.assertTrue(enough.wait(scaled(60)), 'only %d messages acknowledged; errors: %r' %
                        (len(acked), errors[:5]))
        s.proc.kill()   # SIGKILL: no clean-up code runs
        with lock:
            killed.set()
            acked_at_kill = dict(acked)
        s.proc.wait()
        for t in threads:
            t.join(scaled(30))
        self.assertEqual(errors, [], 'errors before the kill')
        self.assertLess(len(acked_at_kill), N_MESSAGES, 'the kill must come in the middle')

        def check_new(phase):
            seen = {}
            for u in USERS:
                newdir = os.path.join(s.maildir(u), 'new')
                for name in os.listdir(newdir):
                    with open(os.path.join(newdir, name), 'rb') as f:
                        data = f.read()
                    headers, rest = split_delivered(data)
                    mid = message_id(rest)
                    self.assertIn(mid, msgs, '%s: %s/%s is not a message we sent (partial?)' %
                                  (phase, newdir, name))
                    rcpts, msg = msgs[mid]
                    self.assertEqual(rest, stored_form(msg), '%s: %s is not intact' % (phase, name))
                    self.assertIn(u, rcpts, '%s: %s delivered to the wrong user' % (phase, mid))
                    self.assertIn(('delivered-to', u), [(h, v.strip('<>')) for h, v in headers])
                    self.assertNotIn((u, mid), seen, '%s: %s delivered twice to %s' % (phase, mid, u))
                    seen[(u, mid)] = name
            for mid, rcpts in acked_at_kill.items():
                for u in rcpts:
                    self.assertIn((u, mid), seen, '%s: acknowledged message %s lost for %s' % (phase, mid, u))
            return seen

        before = check_new('after SIGKILL')
        tmp_left = [f for f in s.all_mail_files(subs=('tmp',))]
        # Make sure there is something to sweep even if the kill left nothing.
        planted = os.path.join(s.maildir(USERS[0]), 'tmp', '1700000000.M9P9Q9.crashed')
        with open(planted, 'wb') as f:
            f.write(b'From: half\r\nSubject: wri')

        s.start()
        self.assertEqual(s.all_mail_files(subs=('tmp',)), [], 'tmp/ must be swept at start')
        after = check_new('after restart')
        self.assertEqual(before, after, 'restart changed new/')
        print('\nacked before kill: %d, copies in new/: %d, tmp files left by the kill: %d' %
              (len(acked_at_kill), len(before), len(tmp_left)))

        # The restarted server takes mail again.
        msg = make_message('after restart', msgid='<after-restart@client.example.org>')
        with RawSMTP(s.addr()) as c:
            r = c.send_message(SENDER, [USERS[1]], dot_stuff(msg))
            self.assertEqual(r.code, 250, r)


    def test_sigterm_during_deliveries(self):
        """A graceful stop under load: every 250 is on disk, the server exits 0."""
        s = self.new_server(server={'shutdown_timeout': '10s', 'max_connections_per_ip': 100})
        msgs = list(build_messages().items())[:80]
        addr = s.addr()
        acked = {}
        lock = threading.Lock()
        enough = threading.Event()

        def worker(k):
            try:
                cl = smtplib.SMTP(*addr, local_hostname='client.example.org', timeout=scaled(30))
            except OSError:
                return
            for msgid, (rcpts, msg) in msgs[k::N_THREADS]:
                try:
                    if cl.sendmail(SENDER, rcpts, msg):
                        break
                except (smtplib.SMTPException, OSError):
                    break
                with lock:
                    acked[msgid] = rcpts
                    if len(acked) >= 20:
                        enough.set()
            try:
                cl.close()
            except OSError:
                pass

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(N_THREADS)]
        for t in threads:
            t.start()
        self.assertTrue(enough.wait(scaled(60)))
        rc = s.stop()
        for t in threads:
            t.join(scaled(30))
        self.assertEqual(rc, 0, 'SIGTERM under load must exit 0')
        by_user = {}
        for u in USERS:
            for data in s.messages(u):
                headers, rest = split_delivered(data)
                mid = message_id(rest)
                self.assertIn(mid, dict(msgs))
                self.assertEqual(rest, stored_form(dict(msgs)[mid][1]))
                by_user.setdefault(u, set()).add(mid)
        for mid, rcpts in acked.items():
            for u in rcpts:
                self.assertIn(mid, by_user.get(u, set()), 'acknowledged %s lost for %s' % (mid, u))
        self.assertEqual(s.all_mail_files(subs=('tmp',)), [], 'a graceful stop leaves nothing in tmp/')

if __name__ == '__main__':
    unittest.main(verbosity=2)
