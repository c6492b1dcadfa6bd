#!/usr/bin/python3
"""SIGKILL under mixed load (issue 8): nothing acknowledged is lost.

Each round runs concurrent clients against the real server for a random
short time: SMTP deliveries, IMAP sessions that STORE +FLAGS/-FLAGS,
EXPUNGE, MOVE, APPEND and FETCH, and POP3 sessions that RETR and DELE, then
QUIT or drop the connection. The server is killed with SIGKILL at a random
moment and started again on the same data_dir, so state accumulates over
the rounds. The clients keep a ledger of what the server acknowledged;
after each restart the Maildir files, an IMAP scan of every folder and a
POP3 UIDL of every INBOX are checked against it:

- a message that got 250 (SMTP) or OK (APPEND) is present exactly once,
  in the folder the acknowledged MOVEs put it, byte-identical; a message
  whose EXPUNGE or DELE+QUIT was acknowledged is gone; one whose delivery,
  MOVE, EXPUNGE or QUIT was sent but not answered may be in either state,
  never twice; a message DELE'd in a POP3 session that never sent QUIT
  stays (RFC 1939 6);
- every flag change answered OK is kept (a STORE sent but not answered
  makes that flag unknown, nothing more);
- (UIDVALIDITY, UID) never names two messages over the whole run, UIDNEXT
  never goes backwards and stays above every UID given, a message keeps
  its UID, UIDVALIDITY does not change;
- every file in new/ and cur/ parses and carries its Message-ID and a body
  that matches its X-Crash-Sum; tmp/ is empty after the restart; the file
  names' flags agree with IMAP; POP3's UIDL agrees with IMAP's INBOX.

Concurrent clients never race on the same message: each round gives every
IMAP session a folder of its own (its MOVEs go to folders nobody works in)
and the POP3 session an INBOX no IMAP session works in. So the order in
which acknowledgements reach the ledger never matters.

The suite runs BUZON_CRASH_ROUNDS rounds (20). A long run:
    nice -n 19 ./test_crash_load.py --rounds 1000
BUZON_CRASH_SEED (or --seed) replays a run's plan: the same clients, ops,
messages and kill times; thread timing differs, so a replay hits a
neighbouring moment rather than the same instruction. A failed long run
keeps its data_dir and prints where it is.
"""

import argparse
import copy
import hashlib
import os
import poplib
import random
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
import unittest
from collections import Counter

from buzon_test import (PASSWORD, SANITIZED, SANITIZER_RE, BuzonTestCase, RawIMAP, Server,
                        make_message, scaled, split_delivered)

USERS = ['alice@example.test', 'bob@example.test', 'carol@example.test']
FOLDERS = ['INBOX', 'Archive', 'Trash', 'Junk']
STORE_FLAGS = ['\\Seen', '\\Flagged', '\\Answered', '\\Draft', 'Work', 'Later']
ALL_FLAGS = frozenset(STORE_FLAGS + ['\\Deleted'])
SYSTEM_FLAGS = frozenset(f for f in ALL_FLAGS if f.startswith('\\'))
INFO_LETTERS = {'D': '\\Draft', 'F': '\\Flagged', 'R': '\\Answered', 'S': '\\Seen', 'T': '\\Deleted'}
SENDER = 'sender@client.example.org'
LISTENERS = {'mx': '127.0.0.1:0', 'imap': ('imap', '127.0.0.1:0'), 'pop': ('pop3', '127.0.0.1:0')}
SERVER_KEYS = {'max_connections_per_ip': 200}

SUITE_ROUNDS = int(os.environ.get('BUZON_CRASH_ROUNDS', '20'))
FOLDER_CAP = 30     # above it an IMAP session expunges and moves out more
USER_CAP = 70       # SMTP sends nothing to a user holding more
# Fewer clients under ASan, whose server is three times slower.
N_SMTP, N_IMAP = (1, 2) if SANITIZED else (2, 2)
KILL_AFTER = (0.05, 1.2)

MID_RE = re.compile(rb'(?im)^message-id:[ \t]*(<[^>\r\n]*>)')
SUM_RE = re.compile(rb'(?im)^x-crash-sum:[ \t]*([0-9a-f]{64})')
FETCH_RE = re.compile(rb'^\* (\d+) FETCH \(')
LITERAL_RE = re.compile(rb'\{(\d+)\}\r\n')
UID_RE = re.compile(rb'\bUID (\d+)')
FLAGS_RE = re.compile(rb'\bFLAGS \(([^)]*)\)')
COPYUID_RE = re.compile(rb'\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]')
APPENDUID_RE = re.compile(r'\[APPENDUID (\d+) (\d+)\]')

_POOL = bytes(random.Random(8).choice(b'abcdefghijklmnopqrstuvwxyz0123456789 .,-') for _ in range(1 << 16))


# ----------------------------------------------------------------------------
# Messages


def make_body(rnd, size):
    lines, total = [], 0
    while total < size:
        n = rnd.randint(0, 150)
        start = rnd.randrange(len(_POOL) - n)
        line = _POOL[start:start + n]
        if rnd.random() < 0.05:
            line = b'.' + line        # dot-stuffed by SMTP and POP3 on the wire
        lines.append(line)
        total += len(line) + 2
    return b'\r\n'.join(lines) + b'\r\n'


def build(rnd, mid, rcpt):
    """A message with CRLF line ends and its digest (sha256 of the whole
    message with LF line ends: what it is whatever a server did to them)."""
    size = rnd.choice([200, 800, 3000, 12000]) if rnd.random() > 0.05 else rnd.choice([70000, 200000])
    body = make_body(rnd, size)
    extra = b'X-Crash-Sum: ' + hashlib.sha256(body.replace(b'\r\n', b'\n')).hexdigest().encode() + b'\r\n'
    msg = make_message('crash %s' % mid, body, extra, mid).replace(b'alice@example.test', rcpt.encode())
    return msg, hashlib.sha256(msg.replace(b'\r\n', b'\n')).hexdigest()


def parse_stored(data):
    """(Message-ID or None, whether the body matches X-Crash-Sum, digest)
    of a Maildir file, an IMAP BODY[] or a POP3 RETR: the trace headers the
    server added are dropped and line ends taken as LF."""
    rest = split_delivered(data)[1].replace(b'\r\n', b'\n')
    digest = hashlib.sha256(rest).hexdigest()
    head, sep, body = rest.partition(b'\n\n')
    mid, want = MID_RE.search(head), SUM_RE.search(head)
    ok = bool(sep and want and hashlib.sha256(body).hexdigest().encode() == want.group(1))
    return (mid.group(1).decode() if mid and sep else None), ok, digest


def expand_uids(text):
    out = []
    for part in text.split(','):
        a, _, b = part.partition(':')
        lo, hi = sorted((int(a), int(b or a)))
        out.extend(range(lo, hi + 1))
    return out


def info_flags(name):
    info = name.split(':2,', 1)[1] if ':2,' in name else ''
    return frozenset(INFO_LETTERS[ch] for ch in info if ch in INFO_LETTERS)


def folder_dir(server, user, folder):
    return server.maildir(user, None if folder == 'INBOX' else folder)


# ----------------------------------------------------------------------------
# The ledger: what the server acknowledged


class Entry:
    """One message of one user. state: sending (no answer yet), acked,
    maybe (sent, never answered), refused. gone: no, yes (deletion
    acknowledged), maybe. folder: where it is; also: folders an unanswered
    MOVE may have put it in. flags: the flags known set; unknown: flags
    whose state nobody can know. loc: (folder, uidvalidity, uid) last
    known."""

    def __init__(self, user, mid, digest, folder, flags):
        self.user, self.mid, self.digest = user, mid, digest
        self.state, self.gone = 'sending', 'no'
        self.folder, self.also = folder, set()
        self.flags, self.unknown = set(flags), set()
        self.loc = None
        self.history = []

    def note(self, text):
        self.history = (self.history + [text])[-10:]


class Ledger:

    def __init__(self):
        self.lock = threading.RLock()
        self.entries = {}           # (user, mid) -> Entry
        self.gone = {}              # (user, mid) -> round it went
        self.uidmap = {}            # (user, folder, uidvalidity, uid) -> mid
        self.uidnext = {}           # (user, folder, uidvalidity) -> highest UIDNEXT seen
        self.maxuid = {}            # (user, folder, uidvalidity) -> highest UID seen
        self.uidvalidity = {}       # (user, folder) -> uidvalidity
        self.problems = []
        self.stats = Counter()
        self.round = 0

    def clone(self):
        """A deep copy (the damage test checks each damage from the same state)."""
        with self.lock:
            other = Ledger.__new__(Ledger)
            other.__dict__ = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != 'lock'}
            other.lock = threading.RLock()
            return other

    def problem(self, text):
        with self.lock:
            self.problems.append('round %d: %s' % (self.round, text))

    def count(self, what, n=1):
        with self.lock:
            self.stats[what] += n

    def get(self, user, mid):
        return self.entries.get((user, mid))

    def held(self, user):
        with self.lock:
            return sum(1 for (u, _), e in self.entries.items() if u == user and e.gone != 'yes')

    def in_folder(self, user, folder):
        with self.lock:
            return sum(1 for (u, _), e in self.entries.items() if u == user and e.folder == folder and
                       e.gone != 'yes')

    # -- what clients did ------------------------------------------------------

    def new(self, user, mid, digest, folder, flags, how):
        with self.lock:
            e = Entry(user, mid, digest, folder, flags)
            e.note('r%d %s to %s %s' % (self.round, how, folder, sorted(flags)))
            self.entries[(user, mid)] = e

    def answered(self, user, mid, ok, loc=None, why=''):
        with self.lock:
            e = self.entries[(user, mid)]
            e.state = 'acked' if ok else 'refused'
            e.note('r%d %s %s' % (self.round, 'acknowledged' if ok else 'refused', why))
            if loc:
                e.loc = loc

    def unanswered(self, user, mid, unknown=()):
        """unknown: flags it may lack if it is there (an APPEND's keywords,
        which reach the index after the file reaches cur/)."""
        with self.lock:
            e = self.entries[(user, mid)]
            if e.state == 'sending':
                e.state = 'maybe'
                e.unknown.update(unknown)
                e.note('r%d not answered' % self.round)

    def store(self, user, mids, flag, add, acked):
        with self.lock:
            for mid in mids:
                e = self.entries[(user, mid)]
                e.note('r%d STORE %sFLAGS %s %s' % (self.round, '+' if add else '-', flag,
                                                     'OK' if acked else 'unanswered'))
                if not acked:
                    e.unknown.add(flag)
                elif add:
                    e.flags.add(flag)
                    e.unknown.discard(flag)
                else:
                    e.flags.discard(flag)
                    e.unknown.discard(flag)

    def deleted(self, user, mids, acked, how):
        with self.lock:
            for mid in mids:
                e = self.entries[(user, mid)]
                e.note('r%d %s %s' % (self.round, how, 'OK' if acked else 'unanswered'))
                if acked:
                    e.gone = 'yes'
                elif e.gone == 'no':
                    e.gone = 'maybe'

    def moved(self, user, mids, src, dst, acked, dst_locs=None):
        with self.lock:
            for k, mid in enumerate(mids):
                e = self.entries[(user, mid)]
                e.note('r%d MOVE %s -> %s %s' % (self.round, src, dst, 'OK' if acked else 'unanswered'))
                if acked:
                    e.folder = dst
                    e.loc = dst_locs[k] if dst_locs else None
                else:
                    e.also.update((src, dst))
                    e.loc = None

    # -- what clients saw -------------------------------------------------------

    def see(self, user, folder, uidvalidity, uid, mid, where):
        """One observation of UID uid in folder naming message mid."""
        with self.lock:
            key = (user, folder, uidvalidity, uid)
            was = self.uidmap.setdefault(key, mid)
            if was != mid:
                self.problem('UID reused: %s %s UIDVALIDITY %d UID %d was %s, now %s (%s)' %
                             (user, folder, uidvalidity, uid, was, mid, where))
            k = (user, folder, uidvalidity)
            self.maxuid[k] = max(self.maxuid.get(k, 0), uid)
            self.see_uidvalidity(user, folder, uidvalidity, where)
            e = self.entries.get((user, mid))
            if e is not None and e.folder == folder and not e.also:
                e.loc = (folder, uidvalidity, uid)

    def see_uidvalidity(self, user, folder, uidvalidity, where):
        with self.lock:
            was = self.uidvalidity.setdefault((user, folder), uidvalidity)
            if was != uidvalidity:
                self.problem('UIDVALIDITY of %s %s changed from %d to %d (%s): the index was rebuilt' %
                             (user, folder, was, uidvalidity, where))
                self.uidvalidity[(user, folder)] = uidvalidity

    def see_uidnext(self, user, folder, uidvalidity, uidnext, where, strict=False):
        """strict: no UID may be given meanwhile (after a restart), so UIDNEXT
        must be above every UID ever seen in the folder."""
        with self.lock:
            self.see_uidvalidity(user, folder, uidvalidity, where)
            k = (user, folder, uidvalidity)
            if uidnext < self.uidnext.get(k, 0):
                self.problem('UIDNEXT of %s %s went back from %d to %d (%s)' %
                             (user, folder, self.uidnext[k], uidnext, where))
            if strict and uidnext <= self.maxuid.get(k, 0):
                self.problem('UIDNEXT of %s %s is %d but UID %d was given already (%s)' %
                             (user, folder, uidnext, self.maxuid[k], where))
            self.uidnext[k] = max(self.uidnext.get(k, 0), uidnext)


# ----------------------------------------------------------------------------
# Clients: each runs until the kill, keeping the ledger


class Client(threading.Thread):

    def __init__(self, ctx, name, rnd):
        super().__init__(daemon=True, name=name)
        self.ctx, self.ledger, self.rnd = ctx, ctx.ledger, rnd
        self.pending = None     # what an unanswered command leaves uncertain
        self.conns = []         # closed when the client ends

    def opened(self, conn):
        self.conns.append(conn)
        return conn

    def run(self):
        try:
            self.work()
        except Exception as e:     # the kill ends every client this way
            if not self.ctx.killed.is_set():
                self.ledger.problem('%s failed before the kill: %r' % (self.name, e))
        finally:
            if self.pending:
                self.pending()
                self.pending = None
            for conn in self.conns:
                try:
                    conn.close()
                except OSError:
                    pass

    def expect(self, ok, what):
        """A refusal is a problem unless it is the kill's doing."""
        if not ok:
            raise AssertionError(what)

    def mid(self):
        self.ctx.serial += 1
        return '<crash-%s-%d-%s-%d@client.example.org>' % (self.ctx.seed, self.ctx.round, self.name,
                                                            self.ctx.serial)


class SMTPClient(Client):

    def work(self):
        host, port = self.ctx.server.addr('mx')
        while not self.ctx.killed.is_set():
            cl = self.opened(smtplib.SMTP(host, port, local_hostname='client.example.org', timeout=scaled(20)))
            for _ in range(self.rnd.randint(1, 6)):
                room = [u for u in USERS if self.ledger.held(u) < USER_CAP]
                if not room:
                    time.sleep(0.05)
                    continue
                rcpts = self.rnd.sample(room, 2 if len(room) > 1 and self.rnd.random() < 0.2 else 1)
                mid = self.mid()
                msg, digest = build(self.rnd, mid, rcpts[0])
                for u in rcpts:
                    self.ledger.new(u, mid, digest, 'INBOX', (), 'SMTP')
                self.pending = lambda: [self.ledger.unanswered(u, mid) for u in rcpts]
                try:
                    refused = cl.sendmail(SENDER, rcpts, msg)
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
                    self.pending = None
                    for u in rcpts:
                        self.ledger.answered(u, mid, False, why=repr(e)[:80])
                    raise
                self.pending = None
                for u in rcpts:
                    self.ledger.answered(u, mid, u not in refused, why=repr(refused.get(u, ''))[:80])
                self.ledger.count('smtp 250', len(rcpts) - len(refused))
                self.expect(not refused, 'SMTP refused %r' % refused)
                time.sleep(self.rnd.uniform(0.005, 0.06))
            cl.quit()


class IMAPClient(Client):
    """Works in one folder of one user: nobody else changes its messages."""

    def __init__(self, ctx, name, rnd, user, folder, dests):
        super().__init__(ctx, name, rnd)
        self.user, self.folder, self.dests = user, folder, dests

    def ok(self, c, text):
        untagged, tagged = c.command(text)
        self.expect(re.match(rb'^\S+ OK\b', tagged), '%s -> %r' % (text, tagged))
        return untagged, tagged

    def refresh(self, c):
        """{uid: (mid, flags)} of the folder, as FETCH answers it."""
        untagged, _ = self.ok(c, 'UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')
        out = {}
        for uid, flags, data in fetch_items(untagged):
            if data is None:
                continue
            m = MID_RE.search(data)
            self.expect(uid is not None and m and flags is not None, 'FETCH answer %r' % data[:100])
            mid = m.group(1).decode()
            out[uid] = (mid, flags)
            self.ledger.see(self.user, self.folder, self.uidvalidity, uid, mid, self.name + ' FETCH')
            e = self.ledger.get(self.user, mid)
            if e is None:
                self.ledger.problem('%s sees %s UID %d, a message nobody sent' % (self.name, mid, uid))
                continue
            known = ALL_FLAGS - e.unknown
            if flags & known != e.flags & known:
                self.ledger.problem('%s: %s %s UID %d has flags %s, the ledger says %s' %
                                    (self.name, self.user, mid, uid, sorted(flags & known),
                                     sorted(e.flags & known)))
        return out

    def work(self):
        c = self.opened(RawIMAP(self.ctx.server.addr('imap'), timeout=20, binary=True))
        c.login(self.user)
        untagged, _ = self.ok(c, 'SELECT %s' % self.folder)
        self.uidvalidity, uidnext = select_codes(untagged)
        self.ledger.see_uidnext(self.user, self.folder, self.uidvalidity, uidnext, self.name + ' SELECT')
        while not self.ctx.killed.is_set():
            msgs = self.refresh(c)
            n = len(msgs)
            big = n > FOLDER_CAP
            full = big or self.ledger.held(self.user) >= USER_CAP
            ops = ['store'] * 35 + ['expunge'] * (30 if big else 10) + ['move'] * (25 if big else 12) + \
                  ['append'] * (0 if full else 25 if n < 5 else 8) + ['fetch'] * 10
            op = self.rnd.choice(ops) if n else 'append'
            if op == 'append' and full:
                time.sleep(0.02)
                continue
            if op == 'append':
                self.append(c)
                continue
            uids = sorted(self.rnd.sample(sorted(msgs), min(n, self.rnd.randint(1, 3))))
            mids = [msgs[u][0] for u in uids]
            uidset = ','.join(map(str, uids))
            if op == 'store':
                flag, add = self.rnd.choice(STORE_FLAGS), self.rnd.random() < 0.6
                self.pending = lambda: self.ledger.store(self.user, mids, flag, add, False)
                self.ok(c, 'UID STORE %s %sFLAGS (%s)' % (uidset, '+' if add else '-', flag))
                self.pending = None
                self.ledger.store(self.user, mids, flag, add, True)
                self.ledger.count('imap store')
            elif op == 'expunge':
                self.pending = lambda: self.ledger.store(self.user, mids, '\\Deleted', True, False)
                self.ok(c, 'UID STORE %s +FLAGS.SILENT (\\Deleted)' % uidset)
                self.ledger.store(self.user, mids, '\\Deleted', True, True)
                if self.rnd.random() < 0.5:
                    cmd = 'UID EXPUNGE %s' % uidset
                else:
                    # EXPUNGE takes every \Deleted message of the folder
                    cmd = 'EXPUNGE'
                    mids = [m for m, f in msgs.values() if '\\Deleted' in f] + mids
                self.pending = lambda: self.ledger.deleted(self.user, mids, False, cmd)
                self.ok(c, cmd)
                self.pending = None
                self.ledger.deleted(self.user, mids, True, cmd)
                self.ledger.count('imap expunge', len(set(mids)))
            elif op == 'move':
                dst = self.rnd.choice(self.dests)
                self.pending = lambda: self.ledger.moved(self.user, mids, self.folder, dst, False)
                untagged, _ = self.ok(c, 'UID MOVE %s %s' % (uidset, dst))
                self.pending = None
                m = next((COPYUID_RE.search(l) for l in untagged if COPYUID_RE.search(l)), None)
                self.expect(m, 'MOVE without COPYUID: %r' % untagged[-3:])
                uv = int(m.group(1))
                pairs = dict(zip(expand_uids(m.group(2).decode()), expand_uids(m.group(3).decode())))
                self.expect(sorted(pairs) == uids, 'COPYUID %r for %r' % (m.group(0), uids))
                locs = [(dst, uv, pairs[u]) for u in uids]
                self.ledger.moved(self.user, mids, self.folder, dst, True, locs)
                for mid, loc in zip(mids, locs):
                    self.ledger.see(self.user, dst, uv, loc[2], mid, self.name + ' COPYUID')
                self.ledger.count('imap move', len(uids))
            else:
                uid = uids[0]
                untagged, _ = self.ok(c, 'UID FETCH %d (UID BODY.PEEK[])' % uid)
                got = [d for u, _, d in fetch_items(untagged) if u == uid and d is not None]
                self.expect(got, 'no BODY[] for UID %d' % uid)
                mid, ok, digest = parse_stored(got[0])
                e = self.ledger.get(self.user, mid)
                if not ok or e is None or e.digest != digest:
                    self.ledger.problem('%s: BODY[] of %s UID %d is not the message sent (%s)' %
                                        (self.name, self.folder, uid, mid))
                self.ledger.count('imap fetch')

    def append(self, c):
        mid = self.mid()
        msg, digest = build(self.rnd, mid, self.user)
        flags = sorted(self.rnd.sample(STORE_FLAGS, self.rnd.randint(0, 3)))
        self.ledger.new(self.user, mid, digest, self.folder, flags, 'APPEND')
        self.pending = lambda: self.ledger.unanswered(self.user, mid, set(flags) - SYSTEM_FLAGS)
        _, text = c.append_sync(c.tag(), '%s (%s)' % (self.folder, ' '.join(flags)), msg)
        text = text.decode('latin-1')
        self.expect(text.startswith('OK'), 'APPEND -> %r' % text)
        self.pending = None
        m = APPENDUID_RE.search(text)
        self.expect(m, 'APPEND without APPENDUID: %r' % text)
        loc = (self.folder, int(m.group(1)), int(m.group(2)))
        self.ledger.answered(self.user, mid, True, loc, 'APPENDUID %d %d' % loc[1:])
        self.ledger.see(self.user, self.folder, loc[1], loc[2], mid, self.name + ' APPENDUID')
        self.ledger.count('imap append')


class POP3Client(Client):

    def __init__(self, ctx, name, rnd, user):
        super().__init__(ctx, name, rnd)
        self.user = user

    def login(self):
        host, port = self.ctx.server.addr('pop')
        deadline = time.monotonic() + scaled(3)
        while True:
            p = self.opened(poplib.POP3(host, port, timeout=scaled(20)))
            try:
                p.user(self.user)
                p.pass_(PASSWORD)
                return p
            except poplib.error_proto as e:
                p.close()
                # the session before, dropped without QUIT, may hold the lock a moment
                if b'IN-USE' not in str(e).encode() or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def work(self):
        while not self.ctx.killed.is_set():
            p = self.login()
            _, listing, _ = p.uidl()
            uidl = {}
            for l in listing:
                n, u = l.decode().split()
                uv, _, uid = u.partition('-')
                uidl[int(n)] = (int(uv), int(uid))
            held = len(uidl)
            k = min(held, self.rnd.randint(0, 6 if held > FOLDER_CAP else 2))
            dele = []
            for n in sorted(self.rnd.sample(sorted(uidl), k)):
                whole = self.rnd.random() < 0.5
                if whole:
                    _, lines, _ = p.retr(n)
                else:
                    _, lines, _ = p.top(n, 0)
                mid, ok, digest = parse_stored(b'\n'.join(lines) + b'\n')
                self.expect(mid, 'POP3 message %d has no Message-ID' % n)
                e = self.ledger.get(self.user, mid)
                self.ledger.see(self.user, 'INBOX', uidl[n][0], uidl[n][1], mid, self.name + ' UIDL')
                if e is None:
                    self.ledger.problem('%s: POP3 message %s is one nobody sent' % (self.name, mid))
                    continue
                if whole and (not ok or digest != e.digest):
                    self.ledger.problem('%s: RETR of %s is not the message sent' % (self.name, mid))
                if self.rnd.random() < 0.8:
                    p.dele(n)
                    dele.append(mid)
            if self.rnd.random() < 0.15:
                # No QUIT: RFC 1939 6, nothing marked is removed.
                p.close()
                self.ledger.count('pop3 dropped with DELE', len(dele))
                continue
            self.pending = lambda: self.ledger.deleted(self.user, dele, False, 'POP3 DELE+QUIT')
            p.quit()
            self.pending = None
            self.ledger.deleted(self.user, dele, True, 'POP3 DELE+QUIT')
            self.ledger.count('pop3 deleted', len(dele))


def fetch_items(untagged):
    """(uid, flags without \\Recent, first literal) of each FETCH line."""
    for line in untagged:
        if not FETCH_RE.match(line):
            continue
        data, rest = None, line
        lit = LITERAL_RE.search(line)
        if lit:
            n = int(lit.group(1))
            data = line[lit.end():lit.end() + n]
            rest = line[:lit.start()] + line[lit.end() + n:]
        uid, flags = UID_RE.search(rest), FLAGS_RE.search(rest)
        yield (int(uid.group(1)) if uid else None,
               frozenset(flags.group(1).decode().split()) - {'\\Recent'} if flags else None, data)


def select_codes(untagged):
    text = b'\n'.join(untagged)
    uv, un = re.search(rb'\[UIDVALIDITY (\d+)\]', text), re.search(rb'\[UIDNEXT (\d+)\]', text)
    if not uv or not un:
        raise AssertionError('SELECT without UIDVALIDITY/UIDNEXT: %r' % untagged)
    return int(uv.group(1)), int(un.group(1))


# ----------------------------------------------------------------------------
# A run of rounds


class RoundCtx:

    def __init__(self, campaign, n):
        self.server, self.ledger, self.seed, self.round = campaign.server, campaign.ledger, campaign.seed, n
        self.killed = threading.Event()
        self.serial = 0


class Campaign:
    """Rounds of load, SIGKILL, restart and check on one server and data_dir."""

    def __init__(self, server, seed, out=None):
        self.server, self.seed = server, seed
        self.ledger = Ledger()
        self.out = out or (lambda text: None)
        self.round = 0

    # -- one round ----------------------------------------------------------------

    def plan(self, rr):
        """Which client works where: IMAP sessions in folders of their own
        (the fuller ones more often), MOVEs into folders nobody works in,
        POP3 in an INBOX no IMAP session holds."""
        spots = [(u, f) for u in USERS for f in FOLDERS]
        weights = [1 + self.ledger.in_folder(u, f) for u, f in spots]
        owned = []
        while len(owned) < N_IMAP:
            s = rr.choices(spots, weights)[0]
            if s not in owned:
                owned.append(s)
        imap = []
        for u, f in owned:
            dests = [g for g in FOLDERS if g != f and (u, g) not in owned]
            imap.append((u, f, dests))
        free = [u for u in USERS if (u, 'INBOX') not in owned]
        pop = rr.choice(free) if free and rr.random() < 0.9 else None
        return imap, pop

    def run_round(self):
        self.round += 1
        n = self.round
        ledger = self.ledger
        ledger.round = n
        rr = random.Random('%s/%d' % (self.seed, n))
        ctx = RoundCtx(self, n)
        imap, pop = self.plan(rr)
        clients = [SMTPClient(ctx, 's%d' % k, random.Random('%s/%d/s%d' % (self.seed, n, k)))
                   for k in range(N_SMTP)]
        for k, (u, f, dests) in enumerate(imap):
            clients.append(IMAPClient(ctx, 'i%d' % k, random.Random('%s/%d/i%d' % (self.seed, n, k)), u, f, dests))
        if pop:
            clients.append(POP3Client(ctx, 'p0', random.Random('%s/%d/p0' % (self.seed, n)), pop))
        kill_after = rr.uniform(*KILL_AFTER)
        for c in clients:
            c.start()
        time.sleep(kill_after)
        ctx.killed.set()
        self.server.kill()          # SIGKILL: no clean-up code runs
        for c in clients:
            c.join(scaled(30))
            if c.is_alive():
                ledger.problem('client %s still runs 30 s after the kill' % c.name)
        self.check_logs()
        self.server.start()
        if rr.random() < 0.15:
            # Kill the recovery too: the first opens after a crash reconcile
            # each folder with its index; they must survive a kill as well.
            self.kill_during_scan(rr.uniform(0, 0.05))
            ledger.count('recovery killed')
            self.server.start()
        try:
            self.verify('after round %d' % n)
        except Exception as e:
            ledger.problem('the check after the restart failed: %r' % e)
        ledger.count('rounds')
        self.out('round %d: kill after %.2fs, imap %s, pop3 %s, held %s, %d problems' %
                 (n, kill_after, ['%s/%s' % (u.split('@')[0], f) for u, f, _ in imap],
                  pop and pop.split('@')[0], [ledger.held(u) for u in USERS], len(ledger.problems)))
        return list(ledger.problems)

    def kill_during_scan(self, after):
        def scan():
            c = None
            try:
                for u in USERS:
                    c = RawIMAP(self.server.addr('imap'), timeout=5, binary=True)
                    c.login(u)
                    for f in FOLDERS:
                        c.command('SELECT %s' % f)
                        c.command('FETCH 1:* (FLAGS)')
                    c.close()
            except Exception:
                if c:
                    c.close()
        t = threading.Thread(target=scan, daemon=True)
        t.start()
        time.sleep(after)
        self.server.kill()
        t.join(scaled(30))
        self.check_logs()

    def check_logs(self):
        """Sanitizer reports of the run that ended; its log is then dropped
        so that a long run does not keep every line."""
        s = self.server
        lines = s.all_logs + s.log_lines
        bad = [l for l in lines if SANITIZER_RE.search(l)]
        if bad:
            self.ledger.problem('sanitizer report:\n' + '\n'.join(bad[:20]))
        self.ledger.count('error lines', sum(1 for l in lines if 'level=error' in l))
        s.all_logs = []

    # -- the check after a restart ------------------------------------------------

    def scan_files(self, problems):
        """{(user, mid): [(folder, system flags from the name, name)]} of new/ and cur/."""
        out = {}
        for u in USERS:
            for f in FOLDERS:
                d = folder_dir(self.server, u, f)
                tmp = os.listdir(os.path.join(d, 'tmp'))
                if tmp:
                    problems.append('%s %s tmp/ not swept at start: %s' % (u, f, tmp[:3]))
                for sub in ('new', 'cur'):
                    for name in sorted(os.listdir(os.path.join(d, sub))):
                        with open(os.path.join(d, sub, name), 'rb') as fh:
                            data = fh.read()
                        mid, ok, digest = parse_stored(data)
                        if not mid or not ok:
                            problems.append('%s %s %s/%s is partial or damaged (%d octets, Message-ID %s)' %
                                            (u, f, sub, name, len(data), mid))
                            continue
                        out.setdefault((u, mid), []).append((f, info_flags(name), name))
        return out

    def scan_imap(self, problems, where):
        """{(user, mid): [(folder, uidvalidity, uid, flags, digest)]} over IMAP."""
        out = {}
        ledger = self.ledger
        for u in USERS:
            c = RawIMAP(self.server.addr('imap'), timeout=30, binary=True)
            c.login(u)
            for f in FOLDERS:
                untagged, tagged = c.command('SELECT %s' % f)
                if not re.match(rb'^\S+ OK\b', tagged):
                    problems.append('%s SELECT %s -> %r' % (u, f, tagged))
                    continue
                uv, uidnext = select_codes(untagged)
                exists = int(next(re.match(rb'\* (\d+) EXISTS', l).group(1) for l in untagged
                                  if re.match(rb'\* (\d+) EXISTS', l)))
                got = []
                if exists:
                    fu, tagged = c.command('UID FETCH 1:* (UID FLAGS BODY.PEEK[])')
                    got = [x for x in fetch_items(fu) if x[2] is not None]
                    if not re.match(rb'^\S+ OK\b', tagged) or len(got) != exists:
                        problems.append('%s %s: FETCH gave %d of %d messages (%r)' % (u, f, len(got), exists,
                                                                                    tagged))
                for uid, flags, data in got:
                    mid, ok, digest = parse_stored(data)
                    if not mid or not ok:
                        problems.append('%s %s UID %d: BODY[] partial or damaged' % (u, f, uid))
                        continue
                    if uid >= uidnext:
                        problems.append('%s %s UID %d is not below UIDNEXT %d' % (u, f, uid, uidnext))
                    ledger.see(u, f, uv, uid, mid, where)
                    out.setdefault((u, mid), []).append((f, uv, uid, flags, digest))
                ledger.see_uidnext(u, f, uv, uidnext, where, strict=True)
            c.ok('LOGOUT')
            c.close()
        return out

    def scan_pop3(self, problems, seen):
        """Every user can log in (no lock left behind) and UIDL names the
        messages IMAP shows in INBOX."""
        host, port = self.server.addr('pop')
        for u in USERS:
            p = poplib.POP3(host, port, timeout=scaled(20))
            p.user(u)
            p.pass_(PASSWORD)
            got = sorted(l.decode().split()[1] for l in p.uidl()[1])
            p.quit()
            want = sorted('%d-%d' % (uv, uid) for (uu, _), copies in seen.items() if uu == u
                          for f, uv, uid, _, _ in copies if f == 'INBOX')
            if got != want:
                problems.append('%s: POP3 UIDL %s differs from IMAP INBOX %s' % (u, got[:10], want[:10]))

    def verify(self, where):
        """Checks the restarted server against the ledger; returns the
        problems found (also in ledger.problems), then takes what it saw as
        the ledger's new state."""
        ledger = self.ledger
        problems = []
        with ledger.lock:
            locs = {key: e.loc for key, e in ledger.entries.items()}
            start = len(ledger.problems)
        files = self.scan_files(problems)
        seen = self.scan_imap(problems, where)
        self.scan_pop3(problems, seen)

        # The files and IMAP agree.
        for key in set(files) | set(seen):
            a = sorted((f, fl) for f, fl, _ in files.get(key, []))
            b = sorted((f, fl & SYSTEM_FLAGS) for f, _, _, fl, _ in seen.get(key, []))
            if a != b:
                problems.append('%s %s: files %s, IMAP %s' % (key[0], key[1], a, b))

        with ledger.lock:
            for key, e in sorted(ledger.entries.items()):
                copies = seen.get(key, [])
                why = '%s %s (%s)' % (key[0], key[1], '; '.join(e.history))
                if len(copies) > 1:
                    problems.append('duplicated: %d copies in %s of %s%s' % (
                        len(copies), [c[0] for c in copies], why,
                        ' - an unanswered MOVE left it in both folders (RFC 6851 3.3)' if e.also else ''))
                if e.state == 'refused' and copies:
                    problems.append('refused but stored: ' + why)
                elif e.gone == 'yes' and copies:
                    problems.append('deletion acknowledged but still present in %s: %s' % (copies[0][0], why))
                elif e.state == 'acked' and e.gone == 'no' and not copies:
                    problems.append('acknowledged message lost: ' + why)
                for f, uv, uid, flags, digest in copies:
                    if f != e.folder and f not in e.also:
                        problems.append('in %s, expected in %s: %s' % (f, e.folder, why))
                    if digest != e.digest:
                        problems.append('not the message sent: %s %s UID %d: %s' % (f, uv, uid, why))
                    known = ALL_FLAGS - e.unknown
                    if flags & known != e.flags & known:
                        problems.append('flags %s, acknowledged %s: %s %s UID %d: %s' % (
                            sorted(flags & known), sorted(e.flags & known), f, uv, uid, why))
                    loc = locs.get(key)
                    if loc and loc[:2] == (f, uv) and loc[2] != uid and not e.also and len(copies) == 1:
                        problems.append('UID changed from %d to %d: %s' % (loc[2], uid, why))
            for key in sorted(set(seen) - set(ledger.entries)):
                problems.append('%s %s present in %s: %s' % (
                    key[0], key[1], [c[0] for c in seen[key]],
                    'deleted in round %d, back again' % ledger.gone[key] if key in ledger.gone
                    else 'a message nobody sent'))

            # What was seen is what the next round starts from; extra copies
            # (reported above) are expunged so that a run that goes on after
            # a problem does not report it again in every round.
            extra = []
            for key in set(seen) - set(ledger.entries):
                extra.extend((key[0], c[0], c[2]) for c in seen[key])
            for key, e in list(ledger.entries.items()):
                copies = seen.get(key, [])
                if not copies:
                    ledger.gone[key] = ledger.round
                    del ledger.entries[key]
                    continue
                copies = sorted(copies, key=lambda c: c[0] != e.folder)
                extra.extend((key[0], c[0], c[2]) for c in copies[1:])
                f, uv, uid, flags, _ = copies[0]
                e.state, e.gone, e.folder, e.also = 'acked', 'no', f, set()
                e.flags, e.unknown, e.loc = set(flags), set(), (f, uv, uid)
            ledger.stats['messages held'] = len(ledger.entries)
        for p in problems:
            ledger.problem(p)
        if extra:
            self.expunge(extra)
        with ledger.lock:
            return ledger.problems[start:]

    def expunge(self, where):
        """Expunges [(user, folder, uid)]."""
        for u in USERS:
            c = RawIMAP(self.server.addr('imap'), timeout=30, binary=True)
            c.login(u)
            for f in FOLDERS:
                uids = ','.join(str(uid) for uu, ff, uid in where if (uu, ff) == (u, f))
                if uids:
                    c.ok('SELECT %s' % f)
                    c.ok('UID STORE %s +FLAGS.SILENT (\\Deleted)' % uids)
                    c.ok('UID EXPUNGE %s' % uids)
            c.close()

    def summary(self):
        st = self.ledger.stats
        return ', '.join('%s %d' % kv for kv in sorted(st.items()))


def copy_tree(src, dst):
    """A copy with owners and modes kept (the server may run as another user)."""
    subprocess.run(['cp', '-a', src, dst], check=True)


def same_owner(root):
    """What a damage made as root goes to the owner of root (the index's
    -wal and -shm files among them)."""
    st = os.stat(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.lstat(p).st_uid != st.st_uid:
                os.lchown(p, st.st_uid, st.st_gid)


def new_seed():
    env = os.environ.get('BUZON_CRASH_SEED')
    return int(env) if env else random.SystemRandom().randrange(1, 1 << 31)


def make_server(workdir=None):
    s = Server(workdir)
    s.write_config(server=SERVER_KEYS, listeners=LISTENERS)
    return s


# ----------------------------------------------------------------------------
# The suite


class CrashLoad(BuzonTestCase):

    def new_campaign(self, seed):
        s = self.new_server(users=tuple(u.split('@')[0] for u in USERS), server=SERVER_KEYS,
                            listeners=LISTENERS)
        return Campaign(s, seed)

    def test_sigkill_under_mixed_load(self):
        seed = new_seed()
        print('\nBUZON_CRASH_SEED=%d (%d rounds)' % (seed, SUITE_ROUNDS), flush=True)
        camp = self.new_campaign(seed)
        t0 = time.monotonic()
        for _ in range(SUITE_ROUNDS):
            problems = camp.run_round()
            if problems:
                self.fail('BUZON_CRASH_SEED=%d:\n%s' % (seed, '\n'.join(problems)))
        print('%d rounds in %.1fs: %s' % (SUITE_ROUNDS, time.monotonic() - t0, camp.summary()))
        st = camp.ledger.stats
        # The load must have been mixed, or the checks above checked little.
        for what in ('smtp 250', 'imap store', 'imap expunge', 'imap move', 'imap append', 'pop3 deleted'):
            self.assertGreater(st[what], 0, '%s never happened: %s' % (what, camp.summary()))

    def test_checks_fire_on_damage(self):
        """The checker against a data_dir damaged by hand, one damage at a
        time on a fresh copy: each must be reported, or a clean run of the
        test above proves nothing."""
        camp = self.new_campaign(7)
        s = camp.server
        # A state made by the load (what these rounds find is the other
        # test's business: here the check after them must come out clean).
        for _ in range(3):
            camp.run_round()
        ledger = camp.ledger
        ledger.problems = []
        ledger.round += 1

        # Known material: three messages to alice; the first \Flagged and
        # Work, the third expunged (its file kept to be put back).
        alice = USERS[0]
        inbox = folder_dir(s, alice, 'INBOX')

        def file_of(mid):
            for f, _, name in camp.scan_files([]).get((alice, mid), []):
                for sub in ('new', 'cur'):
                    if f == 'INBOX' and os.path.exists(os.path.join(inbox, sub, name)):
                        return os.path.join(inbox, sub, name)
            raise AssertionError('no file for %s' % mid)

        rnd = random.Random(1)
        mids = ['<damage-%d@client.example.org>' % k for k in range(3)]
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(20)) as cl:
            for mid in mids:
                msg, digest = build(rnd, mid, alice)
                ledger.new(alice, mid, digest, 'INBOX', (), 'SMTP')
                self.assertEqual(cl.sendmail(SENDER, [alice], msg), {})
                ledger.answered(alice, mid, True)
        c = RawIMAP(s.addr('imap'), binary=True)
        c.login(alice)
        c.ok('SELECT INBOX')
        uv = select_codes(c.ok('SELECT INBOX')[0])[0]
        uid = {}
        for u, _, d in fetch_items(c.ok('UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')[0]):
            uid[MID_RE.search(d).group(1).decode()] = u
            ledger.see(alice, 'INBOX', uv, u, MID_RE.search(d).group(1).decode(), 'damage test')
        c.ok('UID STORE %d +FLAGS (\\Flagged Work)' % uid[mids[0]])
        ledger.store(alice, [mids[0]], '\\Flagged', True, True)
        ledger.store(alice, [mids[0]], 'Work', True, True)
        gone_path = file_of(mids[2])
        with open(gone_path, 'rb') as fh:
            gone_data = fh.read()
        c.ok('UID STORE %d +FLAGS.SILENT (\\Deleted)' % uid[mids[2]])
        c.ok('UID EXPUNGE %d' % uid[mids[2]])
        ledger.deleted(alice, [mids[2]], True, 'UID EXPUNGE')
        c.close()
        self.assertEqual(camp.verify('before damage'), [])
        self.assertEqual(s.stop(), 0)
        pristine = os.path.join(s.tmp, 'pristine')
        copy_tree(s.data_dir, pristine)
        clean_ledger = ledger.clone()

        def index(sql, *args):
            db = sqlite3.connect(os.path.join(inbox, 'buzon-index.db'))
            db.execute(sql, args)
            db.commit()
            db.close()

        def reuse_uid():
            # UIDNEXT back to the expunged message's UID and the newest
            # message's row dropped: the next scan gives it that UID again.
            index('UPDATE mailboxes SET uidnext = ? WHERE name = ?', uid[mids[2]], 'INBOX')
            index('DELETE FROM messages WHERE uid = ? AND mailbox_id = '
                  '(SELECT id FROM mailboxes WHERE name = ?)', max(uid[mids[0]], uid[mids[1]]), 'INBOX')
            touch()

        def change_uid():
            # The newest message's row gets a UID above it, UIDNEXT follows.
            top = max(uid[mids[0]], uid[mids[1]])
            index('UPDATE messages SET uid = uid + 50 WHERE uid = ? AND mailbox_id = '
                  '(SELECT id FROM mailboxes WHERE name = ?)', top, 'INBOX')
            index('UPDATE mailboxes SET uidnext = uidnext + 50 WHERE name = ?', 'INBOX')

        def touch():
            # The index is trusted while new/ and cur/ keep the mtimes it
            # saw: move them on so that the next open rescans the folder.
            for sub in ('new', 'cur'):
                os.utime(os.path.join(inbox, sub), (time.time() + 5, time.time() + 5))

        def duplicate():
            src = file_of(mids[1])
            shutil.copy(src, os.path.join(inbox, 'cur', '1' + os.path.basename(src).split(':2,')[0] + ':2,'))

        def flip_byte():
            with open(file_of(mids[1]), 'r+b') as fh:
                fh.seek(-10, 2)
                ch = fh.read(1)
                fh.seek(-10, 2)
                fh.write(b'#' if ch != b'#' else b'%')

        def truncate():
            path = file_of(mids[1])
            os.truncate(path, os.path.getsize(path) // 2)

        def drop_flagged():
            path = file_of(mids[0])
            head, info = path.rsplit(':2,', 1)
            os.rename(path, head + ':2,' + info.replace('F', ''))

        def write(path, data):
            with open(path, 'wb') as fh:
                fh.write(data)

        damages = [
            ('delete an acknowledged message', lambda: os.unlink(file_of(mids[1])), r'acknowledged message lost'),
            ('copy a file under another name', duplicate, r'duplicated: 2 copies'),
            ('rewind UIDNEXT, re-index a message', reuse_uid, r'UID reused'),
            ('give a message another UID', change_uid, r'UID changed'),
            ('rewind UIDNEXT only', lambda: index('UPDATE mailboxes SET uidnext = 2 WHERE name = ?', 'INBOX'),
             r'UIDNEXT .* went back|UIDNEXT .* was given already'),
            ('change one byte of a body', flip_byte, r'partial or damaged'),
            ('cut a file in half', truncate, r'partial or damaged'),
            ('take F out of a file name', drop_flagged,
             r"flags \['Work'\], acknowledged \['Work', '.*Flagged'\].*<damage-0@"),
            ('drop the keywords from the index', lambda: index("UPDATE messages SET keywords = ''"),
             r"flags \['.*Flagged'\], acknowledged \['Work', '.*Flagged'\].*<damage-0@"),
            ('put an expunged message back', lambda: write(gone_path, gone_data), r'back again'),
            ('drop a half message into new/',
             lambda: write(os.path.join(inbox, 'new', '1.M1P1Q1.junk'), b'Subject: x\n\nhal'),
             r'partial or damaged'),
            ('delete the index', lambda: os.unlink(os.path.join(inbox, 'buzon-index.db')), r'UIDVALIDITY .* changed'),
        ]
        missed = []
        for what, damage, expect in damages:
            shutil.rmtree(s.data_dir)
            copy_tree(pristine, s.data_dir)
            damage()
            same_owner(s.data_dir)
            s.start()
            camp.ledger = clean_ledger.clone()
            problems = camp.verify('after damage: ' + what)
            self.assertEqual(s.stop(), 0)
            print('damage "%s": %d problems, first: %s' % (what, len(problems), problems[:1]))
            if not any(re.search(expect, p) for p in problems):
                missed.append('damage "%s" not reported as %r: %s' % (what, expect, problems))
        self.assertEqual(missed, [])
        shutil.rmtree(s.data_dir)
        copy_tree(pristine, s.data_dir)
        camp.ledger = clean_ledger.clone()
        s.start()
        self.assertEqual(camp.verify('undamaged again'), [])


# ----------------------------------------------------------------------------
# The long run


def long_run(argv):
    ap = argparse.ArgumentParser(description='SIGKILL under mixed load, many rounds on one data_dir.')
    ap.add_argument('--rounds', type=int, required=True)
    ap.add_argument('--seed', type=int, default=None, help='replay a run (also BUZON_CRASH_SEED)')
    ap.add_argument('--every', type=int, default=25, help='print a summary every N rounds')
    ap.add_argument('--keep-going', action='store_true', help='go on after a round with problems')
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else new_seed()
    s = make_server()
    s.setup_users(users=[u.split('@')[0] for u in USERS])
    s.start()
    camp = Campaign(s, seed)
    print('BUZON_CRASH_SEED=%d rounds=%d binary=%s data_dir=%s sanitized=%s' %
          (seed, args.rounds, s.bin, s.data_dir, SANITIZED), flush=True)
    t0 = time.monotonic()
    failed = 0
    for n in range(1, args.rounds + 1):
        problems = camp.run_round()
        if problems:
            failed += 1
            print('round %d FAILED (BUZON_CRASH_SEED=%d):\n  %s' % (n, seed, '\n  '.join(problems)), flush=True)
            camp.ledger.problems = []
            if not args.keep_going:
                break
        if n % args.every == 0 or n == args.rounds:
            print('round %d, %.0fs: %s' % (n, time.monotonic() - t0, camp.summary()), flush=True)
    rc = s.stop()
    if rc != 0:
        print('server exit on SIGTERM: %s' % rc)
        failed += 1
    camp.check_logs()
    if camp.ledger.problems:
        print('\n'.join(camp.ledger.problems))
        failed += 1
    print('%s: %d rounds in %.0fs, %d with problems; seed %d' %
          ('FAILED' if failed else 'OK', camp.round, time.monotonic() - t0, failed, seed), flush=True)
    if failed:
        print('data_dir kept: %s' % s.data_dir)
    else:
        s.cleanup()
    return 1 if failed else 0


if __name__ == '__main__':
    if any(a == '--rounds' or a.startswith('--rounds=') for a in sys.argv[1:]):
        sys.exit(long_run(sys.argv[1:]))
    unittest.main(verbosity=2)
