#!/usr/bin/python3
"""IMAP benchmarks of issue 4 (run by hand, never by the test suite).

  select-fetch  SELECT of a 10,000-message INBOX after the first open, and
                FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE) on it: buzon
                against Dovecot 2.3 (Debian's dovecot-imapd, run here as a
                private instance on a loopback port, its own config in a
                temp dir) holding the same 10,000 Maildir files.
                Target: buzon's median no slower than Dovecot's, each.
  idle          5,000 concurrent authenticated sessions in IDLE on buzon:
                the server's VmRSS (/proc/PID/status) must stay within
                100 MiB; then one delivery (SMTP, to every user) must reach
                every idling session as "* n EXISTS".

Prints a table per benchmark; exits 1 when a target is missed, 2 when the
benchmark could not run. Loopback only; every loop is bounded in count and
time. Standard library only (Debian's /usr/bin/python3); root is needed
only to apt-get install dovecot-imapd when it is missing.

  bench/imap-bench.py [--buzon PATH] [--messages N] [--rounds R] select-fetch
  bench/imap-bench.py [--buzon PATH] [--sessions N] [--users U] idle
  bench/imap-bench.py all
"""

import argparse
import glob
import os
import pwd
import random
import re
import resource
import selectors
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOMAIN = 'example.test'
PASSWORD = 'bench-password'
LITERAL_RE = re.compile(rb'\{(\d+)\+?\}$')


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def machine():
    mem = 0
    with open('/proc/meminfo') as f:
        for l in f:
            if l.startswith('MemTotal:'):
                mem = int(l.split()[1]) // 1024
    cpu = ''
    with open('/proc/cpuinfo') as f:
        for l in f:
            if l.startswith('model name'):
                cpu = l.split(':', 1)[1].strip()
                break
    return 'nproc %d, RAM %d MiB, %s, kernel %s' % (os.cpu_count(), mem, cpu, os.uname().release)


def find_buzon(path):
    if path:
        return path
    for cand in (os.path.join(ROOT, 'build', 'server', 'buzon'),):
        if os.path.exists(cand):
            return cand
    found = sorted(glob.glob(os.path.join(ROOT, 'build*', 'server', 'buzon')), key=os.path.getmtime)
    if not found:
        sys.exit('imap-bench: no build*/server/buzon; build first or pass --buzon')
    return found[-1]


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError('server exited with %s' % proc.returncode)
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('port %d not open after %ds' % (port, timeout))


def rss_kib(pid):
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for l in f:
            if l.startswith(('VmRSS:', 'VmHWM:')):
                out[l.split(':')[0]] = int(l.split()[1])
    return out


# ----------------------------------------------------------------------------
# A minimal blocking IMAP client: it reads up to the tagged line, stepping
# over literals, and keeps no parsed copy (the same cost for both servers).


class Client:
    def __init__(self, port, timeout=120):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.n = 0
        self.read_line()

    def read_line(self):
        while True:
            i = self.buf.find(b'\r\n')
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError('connection closed')
            self.buf += chunk

    def command(self, text, keep=False):
        """Sends a command; returns (tagged line, response octets, untagged lines if keep)."""
        self.n += 1
        tag = b'b%d' % self.n
        self.sock.sendall(tag + b' ' + text.encode() + b'\r\n')
        total = 0
        kept = []
        pos = 0
        buf = self.buf
        tagsp = tag + b' '
        line_start = 0
        while True:
            i = buf.find(b'\r\n', pos)
            if i < 0:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise RuntimeError('connection closed')
                buf += chunk
                continue
            m = LITERAL_RE.search(buf, max(line_start, i - 20), i)
            if m and m.end() == i:
                n = int(m.group(1))
                while len(buf) < i + 2 + n:
                    chunk = self.sock.recv(1 << 20)
                    if not chunk:
                        raise RuntimeError('connection closed')
                    buf += chunk
                pos = i + 2 + n
                continue
            line = buf[line_start:i]
            pos = i + 2
            if line.startswith(tagsp):
                total += pos
                del buf[:pos]
                return bytes(line), total, kept
            if keep:
                kept.append(bytes(line))
            line_start = pos
            if pos > (4 << 20):
                total += pos
                del buf[:pos]
                pos = line_start = 0

    def ok(self, text, keep=False):
        tagged, n, kept = self.command(text, keep)
        if not re.match(rb'^\S+ OK\b', tagged):
            raise RuntimeError('%s -> %r' % (text, tagged))
        return tagged, n, kept

    def close(self):
        try:
            self.sock.sendall(b'z LOGOUT\r\n')
        except OSError:
            pass
        self.sock.close()


# ----------------------------------------------------------------------------
# The messages: deterministic, real-world-shaped (several header forms,
# encoded words, threads, multipart with attachments), LF line ends as a
# Maildir holds them.

NAMES = ['Ana García', 'Bob Smith', 'Chloé Dubois', 'Dmitri Ivanov', 'Eve Müller', 'Frank O\'Neil', 'Grace Hopper',
         'Hiro Tanaka', 'Ingrid Berg', 'José Álvarez']
WORDS = ('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et '
         'dolore magna aliqua report meeting budget invoice release server mailbox quarterly review').split()


def encoded_word(text):
    import base64
    return '=?UTF-8?B?%s?=' % base64.b64encode(text.encode()).decode()


def make_messages(n, seed=4):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        name = rnd.choice(NAMES)
        addr = name.split()[0].lower().replace('é', 'e').replace('\'', '') + '@sender%d.example.org' % (i % 37)
        frm = '%s <%s>' % (encoded_word(name) if not name.isascii() else '"%s"' % name, addr)
        subj = ' '.join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 9)))
        if i % 5 == 0:
            subj = encoded_word('Re: ' + subj + ' — ünïcode')
        elif i % 3 == 0:
            subj = 'Re: ' + subj
        day = 1 + i % 28
        hdr = ['Return-Path: <%s>' % addr,
               'Received: from mx.sender.example.org (mx.sender.example.org [192.0.2.%d])\n\tby mx.example.test '
               'with ESMTP id b%06d; Sat, %02d Nov 2026 10:%02d:%02d +0000' % (i % 250 + 1, i, day, i % 60, i % 60),
               'From: ' + frm,
               'To: alice@example.test' + (', "Bob" <bob@example.test>' if i % 4 == 0 else ''),
               'Subject: ' + subj,
               'Date: Sat, %02d Nov 2026 10:%02d:%02d +0000' % (day, i % 60, i % 60),
               'Message-ID: <%d.%d@sender.example.org>' % (i, seed)]
        if i % 4 == 0:
            hdr.append('Cc: Carol <carol@example.test>, dave@example.test')
        if i % 3 == 0 and i:
            hdr.append('In-Reply-To: <%d.%d@sender.example.org>' % (i - 1, seed))
        hdr.append('MIME-Version: 1.0')
        text = '\n'.join(' '.join(rnd.choice(WORDS) for _ in range(12)) for _ in range(rnd.randint(3, 60)))
        if i % 7 == 0:
            blob = ''.join(rnd.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')
                           for _ in range(76 * rnd.randint(10, 200)))
            lines = '\n'.join(blob[k:k + 76] for k in range(0, len(blob), 76))
            hdr.append('Content-Type: multipart/mixed; boundary="b%d"' % i)
            body = ('This is a multi-part message in MIME format.\n\n--b%d\nContent-Type: text/plain; charset=utf-8\n'
                    'Content-Transfer-Encoding: 8bit\n\n%s\n\n--b%d\nContent-Type: application/pdf; name="r%d.pdf"\n'
                    'Content-Disposition: attachment; filename="r%d.pdf"\nContent-Transfer-Encoding: base64\n\n'
                    '%s\n--b%d--\n' % (i, text, i, i, i, lines, i))
        else:
            hdr.append('Content-Type: text/plain; charset=utf-8')
            hdr.append('Content-Transfer-Encoding: 8bit')
            body = text + '\n'
        out.append(('\n'.join(hdr) + '\n\n' + body).encode())
    return out


def fill_maildir(md, msgs):
    """Writes msgs into md (new/ for two thirds, cur/ with \\Seen for the rest)."""
    for sub in ('new', 'cur', 'tmp'):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    base = 1764000000
    for i, m in enumerate(msgs):
        name = '%d.M%dP1.bench' % (base + i, i)
        path = os.path.join(md, 'cur', name + ':2,S') if i % 3 == 2 else os.path.join(md, 'new', name)
        with open(path, 'wb') as f:
            f.write(m)
        t = base + i
        os.utime(path, (t, t))


# ----------------------------------------------------------------------------
# buzon


class Buzon:
    def __init__(self, binary, tmp, users, extra=''):
        self.bin = binary
        self.tmp = tmp
        self.data = os.path.join(tmp, 'data')
        self.conf = os.path.join(tmp, 'buzon.ini')
        self.imap_port = free_port()
        self.smtp_port = free_port()
        # Started as root, buzon serves as its service user `buzon`, which
        # must reach data_dir through these directories.
        for d in (os.path.dirname(tmp), tmp):
            os.chmod(d, 0o711)
        with open(self.conf, 'w') as f:
            f.write('[server]\nhostname = mx.example.test\ndata_dir = %s\nlog_level = warn\n%s\n'
                    '[listener "mx"]\nprotocol = smtp\naddress = 127.0.0.1:%d\n\n'
                    '[listener "imap"]\nprotocol = imap\naddress = 127.0.0.1:%d\n'
                    % (self.data, extra, self.smtp_port, self.imap_port))
        self.cli('domain', 'add', DOMAIN)
        for u in users:
            self.cli('user', 'add', '%s@%s' % (u, DOMAIN), '--password-stdin', input=PASSWORD + '\n')
        self.proc = None

    def cli(self, *args, input=''):
        p = subprocess.run([self.bin, '--config', self.conf] + list(args), input=input, capture_output=True,
                           text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError('buzon %s: %s' % (' '.join(args), p.stderr))

    def maildir(self, user):
        return os.path.join(self.data, 'mail', DOMAIN, user)

    def fill(self, user, msgs):
        """fill_maildir, then the files go to the user buzon serves as
        (when root), as another Maildir writer's would."""
        md = self.maildir(user)
        fill_maildir(md, msgs)
        if os.geteuid() == 0:
            pw = pwd.getpwnam('buzon')
            for dirpath, dirnames, filenames in os.walk(md):
                for n in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, n), pw.pw_uid, pw.pw_gid)

    def start(self):
        self.errlog = open(os.path.join(self.tmp, 'buzon.log'), 'wb')
        self.proc = subprocess.Popen([self.bin, '--config', self.conf, 'serve'], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.errlog, start_new_session=True)
        wait_port(self.imap_port, self.proc)
        wait_port(self.smtp_port, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode if self.proc else None


# ----------------------------------------------------------------------------
# Dovecot 2.3, a private instance


def ensure_dovecot():
    if shutil.which('dovecot') and os.path.exists('/usr/lib/dovecot/imap'):
        return True
    if os.geteuid() != 0:
        log('imap-bench: dovecot-imapd is missing and we are not root to install it')
        return False
    log('imap-bench: installing dovecot-imapd (apt-get)')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    # the package's own service must not start: policy-rc.d refuses it
    policy = '/usr/sbin/policy-rc.d'
    made = False
    if not os.path.exists(policy):
        with open(policy, 'w') as f:
            f.write('#!/bin/sh\nexit 101\n')
        os.chmod(policy, 0o755)
        made = True
    try:
        subprocess.run(['apt-get', 'update', '-q'], env=env, check=False, stdout=subprocess.DEVNULL)
        r = subprocess.run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'dovecot-imapd'],
                           env=env, stdout=subprocess.DEVNULL)
    finally:
        if made:
            os.unlink(policy)
    return r.returncode == 0 and shutil.which('dovecot') is not None


class Dovecot:
    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.home = os.path.join(tmp, 'home')
        self.maildir = os.path.join(self.home, 'Maildir')
        run = os.path.join(tmp, 'run')
        os.makedirs(run)
        os.makedirs(self.home)
        os.chmod(tmp, 0o755)
        os.chmod(os.path.dirname(tmp), 0o755)
        # Dovecot will not run mail processes as root: the mail belongs to nobody
        import pwd
        pw = pwd.getpwnam('nobody') if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.conf = os.path.join(tmp, 'dovecot.conf')
        with open(self.conf, 'w') as f:
            f.write('''protocols = imap
listen = 127.0.0.1
base_dir = %(run)s
state_dir = %(tmp)s/state
log_path = %(tmp)s/dovecot.log
info_log_path = %(tmp)s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:%(maildir)s
passdb {
  driver = static
  args = password=%(pw)s
}
userdb {
  driver = static
  args = uid=%(uid)d gid=%(gid)d home=%(home)s
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(port)d
  }
  inet_listener imaps {
    port = 0
  }
}
service imap {
  process_limit = 100
}
''' % {'run': run, 'tmp': tmp, 'maildir': self.maildir, 'pw': PASSWORD, 'home': self.home, 'port': self.port,
       'uid': self.uid, 'gid': self.gid})
        self.proc = None

    def chown(self):
        for dirpath, dirnames, filenames in os.walk(self.home):
            os.chown(dirpath, self.uid, self.gid)
            for f in filenames:
                os.chown(os.path.join(dirpath, f), self.uid, self.gid)

    def start(self):
        self.chown()
        self.proc = subprocess.Popen(['dovecot', '-F', '-c', self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, 'stderr'), 'wb'),
                                     start_new_session=True)
        wait_port(self.port, self.proc)

    def version(self):
        p = subprocess.run(['dovecot', '--version'], capture_output=True, text=True)
        return p.stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ----------------------------------------------------------------------------
# select-fetch

FETCH = 'FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)'


def measure(port, user, rounds, n):
    """First open, then rounds of (SELECT, FETCH) each in a fresh session."""
    res = {'first_select': None, 'select': [], 'fetch': [], 'fetch_octets': 0}
    for r in range(rounds + 1):
        c = Client(port)
        c.ok('LOGIN "%s" "%s"' % (user, PASSWORD))
        t0 = time.perf_counter()
        _, _, untagged = c.ok('SELECT INBOX', keep=True)
        t1 = time.perf_counter()
        exists = [int(l.split()[1]) for l in untagged if re.match(rb'^\* \d+ EXISTS$', l)]
        if exists != [n]:
            raise RuntimeError('SELECT said %r, expected %d EXISTS' % (exists, n))
        if r == 0:
            res['first_select'] = t1 - t0
            # the first FETCH too, to have every cache built before timing
            c.ok(FETCH)
        else:
            res['select'].append(t1 - t0)
            t0 = time.perf_counter()
            _, octets, _ = c.ok(FETCH)
            res['fetch'].append(time.perf_counter() - t0)
            res['fetch_octets'] = octets
        c.close()
    # a count of the FETCH responses, once
    c = Client(port)
    c.ok('LOGIN "%s" "%s"' % (user, PASSWORD))
    c.ok('EXAMINE INBOX')
    _, _, lines = c.ok(FETCH, keep=True)
    res['fetch_responses'] = sum(1 for l in lines if re.match(rb'^\* \d+ FETCH ', l))
    res['sizes'] = [m.group(1) for m in (re.search(rb'RFC822\.SIZE (\d+)', l) for l in lines) if m]
    res['envelopes'] = [m.group(0) for m in (re.search(rb'ENVELOPE \(.*\)(?=\)$|\s)', l) for l in lines) if m]
    c.close()
    return res


def bench_select_fetch(args):
    n = args.messages
    msgs = make_messages(n)
    log('imap-bench: %d messages, %.1f MiB' % (n, sum(map(len, msgs)) / 1048576))
    if not ensure_dovecot():
        log('imap-bench: Dovecot unavailable: cannot compare')
        return 2
    results = {}
    tmp = tempfile.mkdtemp(prefix='imap-bench-')
    try:
        os.makedirs(os.path.join(tmp, 'buzon'))
        os.makedirs(os.path.join(tmp, 'dovecot'))
        b = Buzon(args.buzon, os.path.join(tmp, 'buzon'), ['alice'])
        b.fill('alice', msgs)
        b.start()
        try:
            results['buzon'] = measure(b.imap_port, 'alice@' + DOMAIN, args.rounds, n)
            results['buzon']['rss'] = rss_kib(b.proc.pid)
        finally:
            rc = b.stop()
            if rc != 0:
                log('imap-bench: buzon exited with %s' % rc)
        d = Dovecot(os.path.join(tmp, 'dovecot'))
        fill_maildir(d.maildir, msgs)
        d.start()
        try:
            results['dovecot'] = measure(d.port, 'alice', args.rounds, n)
        finally:
            d.stop()
        dv = d.version()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log('imap-bench: kept ' + tmp)

    print('\nSELECT / FETCH, %d messages, %d rounds (fresh session each), %s' % (n, args.rounds, machine()))
    print('Dovecot %s' % dv)
    hdr = '%-8s %12s %12s %12s %12s %12s %10s %9s' % ('server', 'first SELECT', 'SELECT med', 'SELECT min',
                                                     'FETCH med', 'FETCH min', 'FETCH MiB', 'responses')
    print(hdr)
    print('-' * len(hdr))
    for name in ('buzon', 'dovecot'):
        r = results[name]
        print('%-8s %10.1fms %10.2fms %10.2fms %10.1fms %10.1fms %10.2f %9d' % (
            name, r['first_select'] * 1000, statistics.median(r['select']) * 1000, min(r['select']) * 1000,
            statistics.median(r['fetch']) * 1000, min(r['fetch']) * 1000, r['fetch_octets'] / 1048576,
            r['fetch_responses']))
    for name in ('buzon', 'dovecot'):
        r = results[name]
        print('%-8s rounds: SELECT %s ms; FETCH %s ms' % (name, ' '.join('%.1f' % (x * 1000) for x in r['select']),
                                                        ' '.join('%.0f' % (x * 1000) for x in r['fetch'])))
    bz, dc = results['buzon'], results['dovecot']
    ok = True
    for what in ('select', 'fetch'):
        mb, md = statistics.median(bz[what]), statistics.median(dc[what])
        verdict = 'met' if mb <= md else 'MISSED'
        ok &= mb <= md
        print('target %-6s buzon %.2f ms <= dovecot %.2f ms: %s (ratio %.2f)' % (what.upper(), mb * 1000, md * 1000,
                                                                               verdict, mb / md))
    if bz['fetch_responses'] != n:
        print('buzon returned %d FETCH responses, not %d' % (bz['fetch_responses'], n))
        ok = False
    same_size = sum(1 for a, b in zip(bz['sizes'], dc['sizes']) if a == b)
    same_env = sum(1 for a, b in zip(bz['envelopes'], dc['envelopes']) if a == b)
    print('agreement with Dovecot: RFC822.SIZE %d of %d, ENVELOPE byte-identical %d of %d' %
          (same_size, n, same_env, n))
    for a, b in zip(bz['envelopes'], dc['envelopes']):
        if a != b:
            print('  first ENVELOPE difference:\n    buzon   %r\n    dovecot %r' % (a[:400], b[:400]))
            break
    print('buzon RSS after: %s' % bz.get('rss'))
    return 0 if ok else 1


# ----------------------------------------------------------------------------
# idle


class Idler:
    __slots__ = ('sock', 'buf', 'state', 'user', 'exists', 't_exists')

    def __init__(self, sock, user):
        self.sock = sock
        self.buf = b''
        self.state = 'greeting'
        self.user = user
        self.exists = None
        self.t_exists = None


def bench_idle(args):
    n, nusers = args.sessions, args.users
    lim = raise_nofile(n * 2 + 1000)
    log('imap-bench: RLIMIT_NOFILE %s' % (lim,))
    if lim[0] < n + 100:
        log('imap-bench: cannot open %d sockets (RLIMIT_NOFILE %s)' % (n, lim))
        return 2
    sysinfo = {}
    for k in ('/proc/sys/net/ipv4/ip_local_port_range', '/proc/sys/net/core/somaxconn',
              '/proc/sys/fs/file-max', '/proc/sys/net/ipv4/tcp_max_syn_backlog'):
        try:
            sysinfo[os.path.basename(k)] = open(k).read().split()
        except OSError:
            pass
    log('imap-bench: %s' % sysinfo)
    users = ['u%02d' % i for i in range(nusers)]
    tmp = tempfile.mkdtemp(prefix='imap-bench-idle-')
    b = Buzon(args.buzon, tmp, users,
              extra='max_connections = %d\nmax_connections_per_ip = %d\n' % (n + 100, n + 100))
    # one message already there, so that SELECT has something to open
    for u in users:
        b.fill(u, make_messages(1, seed=7))
    b.start()
    pid = b.proc.pid
    rss0 = rss_kib(pid)
    sel = selectors.DefaultSelector()
    idlers = []
    ready = 0
    failed = []
    t_start = time.monotonic()
    deadline = t_start + args.timeout
    pending = 0
    max_pending = 200

    def advance(it, line):
        nonlocal ready
        if it.state == 'greeting':
            if not line.startswith(b'* OK'):
                raise RuntimeError('greeting %r' % line)
            it.sock.sendall(b'l LOGIN %s@%s "%s"\r\n' % (it.user.encode(), DOMAIN.encode(), PASSWORD.encode()))
            it.state = 'login'
        elif it.state == 'login' and line.startswith(b'l '):
            if not line.startswith(b'l OK'):
                raise RuntimeError('LOGIN %r' % line)
            it.sock.sendall(b's SELECT INBOX\r\n')
            it.state = 'select'
        elif it.state == 'select' and line.startswith(b's '):
            if not line.startswith(b's OK'):
                raise RuntimeError('SELECT %r' % line)
            it.sock.sendall(b'i IDLE\r\n')
            it.state = 'idle-wait'
        elif it.state == 'idle-wait' and line.startswith(b'+'):
            it.state = 'idling'
            ready += 1
            return True
        elif it.state == 'idling':
            m = re.match(rb'^\* (\d+) EXISTS$', line)
            if m and it.t_exists is None:
                it.exists = int(m.group(1))
                it.t_exists = time.monotonic()
        return False

    def pump(timeout):
        nonlocal pending
        for key, _ in sel.select(timeout):
            it = key.data
            try:
                chunk = it.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                chunk = b''
            if not chunk:
                sel.unregister(it.sock)
                failed.append((it.state, 'closed'))
                if it.state != 'idling':
                    pending -= 1
                it.state = 'closed'
                continue
            it.buf += chunk
            while b'\r\n' in it.buf:
                line, it.buf = it.buf.split(b'\r\n', 1)
                try:
                    if advance(it, line):
                        pending -= 1
                except RuntimeError as e:
                    failed.append((it.state, str(e)))
                    sel.unregister(it.sock)
                    it.sock.close()
                    it.state = 'failed'
                    pending -= 1
                    break

    try:
        opened = 0
        while (ready + len(failed) < n) and time.monotonic() < deadline:
            while opened < n and pending < max_pending:
                s = socket.socket()
                s.setblocking(True)
                s.settimeout(10)
                s.connect(('127.0.0.1', b.imap_port))
                s.setblocking(False)
                it = Idler(s, users[opened % nusers])
                idlers.append(it)
                sel.register(s, selectors.EVENT_READ, it)
                opened += 1
                pending += 1
            pump(0.5)
        t_ready = time.monotonic() - t_start
        time.sleep(1.0)  # let the server settle (freed buffers, finished runs)
        rss = rss_kib(pid)
        conns = len(os.listdir('/proc/%d/fd' % pid))
        log('imap-bench: %d idling after %.1fs, RSS %s' % (ready, t_ready, rss))

        # one delivery to every user: every idler must hear "* 2 EXISTS". At
        # most 100 recipients a transaction (buzon's default max_recipients);
        # each idler's delay counts from the 250 of its own transaction.
        t0 = time.monotonic()
        refused = {}
        t_250_of = {}
        with smtplib.SMTP('127.0.0.1', b.smtp_port, timeout=60) as smtp:
            for k in range(0, nusers, 100):
                batch = users[k:k + 100]
                refused.update(smtp.sendmail('bench@client.example.org', ['%s@%s' % (u, DOMAIN) for u in batch],
                                             b'From: bench@client.example.org\r\nSubject: wake up\r\n\r\n'
                                             b'hello\r\n'))
                t = time.monotonic()
                for u in batch:
                    t_250_of[u] = t
        t_250 = time.monotonic()
        wait_until = t_250 + args.notify_timeout
        idling = [it for it in idlers if it.state == 'idling']
        while time.monotonic() < wait_until and any(it.t_exists is None for it in idling):
            pump(0.2)
        got = [it for it in idling if it.t_exists is not None]
        lat = sorted(it.t_exists - t_250_of[it.user] for it in got)
        rss_after = rss_kib(pid)
        for it in idlers:
            try:
                it.sock.close()
            except OSError:
                pass
    finally:
        rc = b.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    mib = rss['VmRSS'] / 1024
    print('\n%d IMAP sessions in IDLE (%d users), %s' % (n, nusers, machine()))
    print('%-42s %s' % ('sessions idling', '%d of %d (failed %d: %s)' % (ready, n, len(failed), failed[:3])))
    print('%-42s %.1f s' % ('time to log in, SELECT and IDLE them all', t_ready))
    print('%-42s %.1f MiB' % ('buzon VmRSS before', rss0['VmRSS'] / 1024))
    print('%-42s %.1f MiB (VmHWM %.1f MiB)' % ('buzon VmRSS with all idling', mib, rss['VmHWM'] / 1024))
    print('%-42s %.1f KiB' % ('per session', (rss['VmRSS'] - rss0['VmRSS']) / max(ready, 1)))
    print('%-42s %d' % ('buzon open fds', conns))
    print('%-42s %s' % ('SMTP delivery to %d users' % nusers, '%d transaction(s), refused %r, last 250 after %.1f ms'
                                                          % ((nusers + 99) // 100, refused, (t_250 - t0) * 1000)))
    if lat:
        print('%-42s %d of %d; after the 250: median %.1f ms, p99 %.1f ms, max %.1f ms' % (
            'idlers that heard "* 2 EXISTS"', len(got), len(idling), statistics.median(lat) * 1000,
            lat[int(len(lat) * 0.99) - 1 if len(lat) > 1 else 0] * 1000, lat[-1] * 1000))
    else:
        print('%-42s 0 of %d' % ('idlers that heard "* 2 EXISTS"', len(idling)))
    print('%-42s %.1f MiB' % ('buzon VmRSS after the delivery', rss_after['VmRSS'] / 1024))
    print('%-42s %s' % ('buzon exit on SIGTERM', rc))
    ok = True
    if ready < n:
        print('target MISSED: only %d of %d sessions idling' % (ready, n))
        ok = False
    if mib > 100:
        print('target MISSED: RSS %.1f MiB > 100 MiB' % mib)
        ok = False
    else:
        print('target RSS <= 100 MiB: met (%.1f MiB)' % mib)
    if len(got) < len(idling):
        print('target MISSED: %d idlers did not hear the delivery within %.0f s' %
              (len(idling) - len(got), args.notify_timeout))
        ok = False
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--buzon', help='the buzon binary (default: build/server/buzon)')
    ap.add_argument('--messages', type=int, default=10000)
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--sessions', type=int, default=5000)
    ap.add_argument('--users', type=int, default=10)
    ap.add_argument('--timeout', type=float, default=300, help='seconds to set up all IDLE sessions')
    ap.add_argument('--notify-timeout', type=float, default=10)
    ap.add_argument('--keep', action='store_true', help='keep the temp dirs')
    ap.add_argument('what', choices=['select-fetch', 'idle', 'all'])
    args = ap.parse_args()
    args.buzon = os.path.abspath(find_buzon(args.buzon))
    with open(args.buzon, 'rb') as f:
        if b'__asan_init' in f.read():
            log('imap-bench: %s is a sanitizer build: numbers will not mean much' % args.buzon)
    log('imap-bench: buzon %s; %s' % (args.buzon, machine()))
    rc = 0
    if args.what in ('select-fetch', 'all'):
        rc = max(rc, bench_select_fetch(args))
    if args.what in ('idle', 'all'):
        rc = max(rc, bench_idle(args))
    return rc


if __name__ == '__main__':
    sys.exit(main())
