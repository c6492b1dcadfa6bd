#!/usr/bin/python3
"""TLS benchmarks of issue 9 (run by hand, never by the test suite).

  idle        N IMAP sessions (default 5,000) logged in and in IDLE on an
              implicit-TLS listener of buzon, and N more on a plain listener
              of the same server, in the same run: the server's VmRSS before,
              after the first set and after the second, KiB per session of
              each. Then one SMTP delivery to every user must reach every
              idler, TLS and plain, as "* 2 EXISTS".
              Target: under 40 KiB per idle TLS session.
  handshakes  TLS handshakes per second against buzon's implicit-TLS IMAP
              listener and Dovecot's imaps (a private instance, the same
              certificate and key), full and resumed (TLS 1.3 session
              tickets), with an ECDSA P-256 and an RSA-2048 certificate,
              alternating buzon, Dovecot, buzon, Dovecot. Several client
              processes connect at once; each connection is a handshake and
              the IMAP greeting read, then close. Resumption is verified on
              both sides: the client's session_reused, and buzon's
              "tls established ... resumed=yes" log lines.
              Target: buzon's median at least Dovecot's.
  smtp        Delivery rate of 4 KiB messages over TLS and in clear text on
              the same buzon: C sessions at once (default 10), each sending M
              messages in one session; messages/s from the first connect
              until the Maildirs hold them all. Alternates plain, TLS, plain,
              TLS. TLS is STARTTLS when the plain listener's EHLO advertises
              it, else SMTP over implicit TLS (the script says which).

Prints a table per benchmark; exits 1 when a target is missed or a check
fails (a message missing, an idler deaf, a resumption that did not happen),
2 when the benchmark could not run. Loopback only; every loop is bounded in
count and time. Standard library only (Debian's /usr/bin/python3), plus
certtool (gnutls-bin) to make the certificates and Dovecot for the
comparison; root is needed only to apt-get install them when missing.

  bench/tls-bench.py [--buzon PATH] [--sessions N] [--users U] idle
  bench/tls-bench.py [--buzon PATH] [--rounds R] [--seconds S] [--clients C] handshakes
  bench/tls-bench.py [--buzon PATH] [--rounds R] [--smtp-sessions C] [--messages M] smtp
"""

import argparse
import importlib.util
import multiprocessing
import os
import pwd
import re
import selectors
import shutil
import signal
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# the helpers of imap-bench.py (same style, same private Dovecot set-up)
_spec = importlib.util.spec_from_file_location('imap_bench', os.path.join(HERE, 'imap-bench.py'))
ib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ib)
log, machine, raise_nofile, free_port, wait_port, rss_kib = (ib.log, ib.machine, ib.raise_nofile, ib.free_port,
                                                             ib.wait_port, ib.rss_kib)
DOMAIN, PASSWORD = ib.DOMAIN, ib.PASSWORD
HOSTNAME = 'mx.example.test'


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def client_context():
    # the certificates are self-signed: no verification (the same for every
    # server); the server's CertificateVerify signature is still checked
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ----------------------------------------------------------------------------
# certificates


def ensure_tools():
    if shutil.which('certtool'):
        return True
    if os.geteuid() != 0:
        log('tls-bench: certtool (gnutls-bin) is missing and we are not root to install it')
        return False
    log('tls-bench: installing gnutls-bin (apt-get)')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    subprocess.run(['apt-get', 'update', '-q'], env=env, check=False, stdout=subprocess.DEVNULL)
    subprocess.run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'gnutls-bin'], env=env,
                   stdout=subprocess.DEVNULL)
    return shutil.which('certtool') is not None


def make_cert(d, kind):
    """A self-signed server certificate for HOSTNAME: kind 'ecdsa' (P-256) or 'rsa' (2048)."""
    key, crt, tmpl = (os.path.join(d, '%s.%s' % (kind, e)) for e in ('key', 'pem', 'tmpl'))
    kt = ['--key-type=ecdsa', '--curve=secp256r1'] if kind == 'ecdsa' else ['--key-type=rsa', '--bits=2048']
    subprocess.run(['certtool', '--generate-privkey', '--outfile', key] + kt, check=True, capture_output=True)
    with open(tmpl, 'w') as f:
        f.write('cn = %s\ndns_name = %s\nexpiration_days = 30\ntls_www_server\nsigning_key\n%s' %
                (HOSTNAME, HOSTNAME, 'encryption_key\n' if kind == 'rsa' else ''))
    subprocess.run(['certtool', '--generate-self-signed', '--load-privkey', key, '--template', tmpl,
                    '--outfile', crt], check=True, capture_output=True)
    # buzon reads them after dropping to its service user
    os.chmod(key, 0o644)
    os.chmod(crt, 0o644)
    return crt, key


# ----------------------------------------------------------------------------
# buzon with TLS listeners


class Buzon(ib.Buzon):
    """listeners: list of (name, protocol, tls mode or None); ports in self.port[name]."""

    def __init__(self, binary, tmp, users, cert, listeners, server_extra='', log_level='warn'):
        self.bin = binary
        self.tmp = tmp
        self.data = os.path.join(tmp, 'data')
        self.conf = os.path.join(tmp, 'buzon.ini')
        self.port = {name: free_port() for name, _, _ in listeners}
        for d in (os.path.dirname(tmp), tmp):
            os.chmod(d, 0o711)
        text = ('[server]\nhostname = %s\ndata_dir = %s\nlog_level = %s\n%s\n[tls]\ncertificate = %s\nkey = %s\n\n'
                % (HOSTNAME, self.data, log_level, server_extra, cert[0], cert[1]))
        for name, proto, tls in listeners:
            text += '[listener "%s"]\nprotocol = %s\naddress = 127.0.0.1:%d\n' % (name, proto, self.port[name])
            if tls:
                text += 'tls = %s\n' % tls
            text += '\n'
        with open(self.conf, 'w') as f:
            f.write(text)
        self.cli('domain', 'add', DOMAIN)
        for u in users:
            self.cli('user', 'add', '%s@%s' % (u, DOMAIN), '--password-stdin', input=PASSWORD + '\n')
        self.proc = None

    def start(self):
        self.logpath = os.path.join(self.tmp, 'buzon.log')
        self.errlog = open(self.logpath, 'ab')
        self.proc = subprocess.Popen([self.bin, '--config', self.conf, 'serve'], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.errlog, start_new_session=True)
        for p in self.port.values():
            wait_port(p, self.proc)

    def log_count(self, pattern):
        self.errlog.flush()
        n = 0
        with open(self.logpath, 'rb') as f:
            for l in f:
                if pattern in l:
                    n += 1
        return n

    def cpu_ticks(self):
        return proc_ticks(self.proc.pid, children=True)


def proc_ticks(pid, children=False):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, cutime 16
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t


def session_ticks(sid):
    """CPU ticks of every live process of session sid, plus what the leader
    has reaped from its exited children."""
    t = 0
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % p) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            t += int(fields[11]) + int(fields[12])
            if int(p) == sid:
                t += int(fields[13]) + int(fields[14])
    return t


# ----------------------------------------------------------------------------
# Dovecot 2.3 imaps, a private instance


class DovecotTLS(ib.Dovecot):
    def __init__(self, tmp, cert, login_mode):
        super().__init__(tmp)
        with open(self.conf) as f:
            text = f.read()
        text = text.replace('ssl = no\n', 'ssl = required\nssl_cert = <%s\nssl_key = <%s\n' % cert)
        text = text.replace('disable_plaintext_auth = no\n', 'disable_plaintext_auth = yes\n')
        text = re.sub(r'service imap-login \{.*?\n\}\n', '', text, flags=re.S)
        if login_mode == 'performance':
            # Dovecot's "high-performance mode": long-lived login processes,
            # one per CPU, each serving many connections
            mode = '  service_count = 0\n  process_min_avail = %d\n  vsz_limit = 1G\n' % os.cpu_count()
        else:
            mode = ''  # Dovecot's default "high-security mode": a login process per connection
        text += ('service imap-login {\n  inet_listener imap {\n    port = 0\n  }\n  inet_listener imaps {\n'
                 '    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }\n%s}\n' % (self.port, mode))
        with open(self.conf, 'w') as f:
            f.write(text)

    def cpu_ticks(self):
        return session_ticks(self.proc.pid)

    def start(self):
        super().start()
        # wait_port's probe is a clear-text connect: let the login processes settle
        time.sleep(1.0)


# ----------------------------------------------------------------------------
# handshakes


def hs_worker(port, src, resume, start_at, seconds, conn):
    """Connects, handshakes, reads the greeting, closes; until the deadline."""
    ctx = client_context()
    sess = None
    n = reused = errors = 0
    first_err = None
    info = None
    if resume:
        # one full handshake before the clock starts, for the first ticket
        s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port), timeout=10, source_address=(src, 0)))
        s.recv(4096)
        sess = s.session
        s.close()
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    t_end = start_at
    while True:
        now = time.time()
        if now >= deadline:
            break
        try:
            raw = socket.create_connection(('127.0.0.1', port), timeout=10, source_address=(src, 0))
            s = ctx.wrap_socket(raw, session=sess)
            buf = b''
            while b'\r\n' not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError('closed before the greeting')
                buf += chunk
            if not buf.startswith(b'* OK'):
                raise RuntimeError('greeting %r' % buf[:80])
            if s.session_reused:
                reused += 1
            if info is None:
                info = (s.version(), s.cipher()[0])
            if resume:
                sess = s.session
            s.close()
            n += 1
            t_end = time.time()
        except (OSError, RuntimeError, ssl.SSLError) as e:
            errors += 1
            if first_err is None:
                first_err = repr(e)
            if errors > 50:
                break
    conn.send({'n': n, 'reused': reused, 'errors': errors, 'first_err': first_err, 'info': info,
               'elapsed': t_end - start_at})
    conn.close()


def hs_round(port, clients, resume, seconds, round_no):
    """One measurement: clients processes for seconds. Source addresses are
    new for every round (127.0.R.k), so TIME_WAIT never runs out of ports."""
    mp = multiprocessing.get_context('fork')
    start_at = time.time() + 1.0
    procs = []
    for k in range(clients):
        a, b = mp.Pipe(False)
        src = '127.%d.%d.%d' % (1 + round_no // 250, round_no % 250 + 1, k + 1)
        p = mp.Process(target=hs_worker, args=(port, src, resume, start_at, seconds, b))
        p.start()
        procs.append((p, a))
    t_cpu0 = os.times()
    res = []
    for p, a in procs:
        if a.poll(seconds + 60):
            res.append(a.recv())
        p.join(30)
    t_cpu1 = os.times()
    client_cpu = (t_cpu1.children_user + t_cpu1.children_system) - (t_cpu0.children_user + t_cpu0.children_system)
    if len(res) != clients:
        raise RuntimeError('only %d of %d client processes reported' % (len(res), clients))
    n = sum(r['n'] for r in res)
    return {'n': n, 'reused': sum(r['reused'] for r in res), 'errors': sum(r['errors'] for r in res),
            'first_err': next((r['first_err'] for r in res if r['first_err']), None),
            'info': next((r['info'] for r in res if r['info']), None),
            'rate': n / seconds, 'client_cpu': client_cpu}


def bench_handshakes(args):
    if not ib.ensure_dovecot() or not ensure_tools():
        log('tls-bench: Dovecot or certtool unavailable: cannot compare')
        return 2
    raise_nofile(4096)
    tick = os.sysconf('SC_CLK_TCK')
    tmp = tempfile.mkdtemp(prefix='tls-bench-hs-')
    os.chmod(tmp, 0o755)
    rows = []   # (cert, mode, round, server, result)
    ok = True
    loads = []
    try:
        for kind in args.certs:
            d = os.path.join(tmp, kind)
            os.makedirs(d)
            cert = make_cert(d, kind)
            os.makedirs(os.path.join(d, 'buzon'))
            os.makedirs(os.path.join(d, 'dovecot'))
            b = Buzon(args.buzon, os.path.join(d, 'buzon'), ['alice'], cert, [('imaps', 'imap', 'implicit')],
                      server_extra='max_connections = 2000\nmax_connections_per_ip = 2000\n', log_level='info')
            dv = DovecotTLS(os.path.join(d, 'dovecot'), cert, args.dovecot_login)
            b.start()
            dv.start()
            servers = {'buzon': (b, b.port['imaps']), 'dovecot': (dv, dv.port)}
            try:
                rn = 0
                for r in range(args.rounds):
                    for mode in ('full', 'resumed'):
                        for name in ('buzon', 'dovecot'):
                            srv, port = servers[name]
                            rn += 1
                            yes0 = b.log_count(b'resumed=yes') if name == 'buzon' else 0
                            est0 = b.log_count(b'tls established') if name == 'buzon' else 0
                            cpu0 = srv.cpu_ticks()
                            la = loadavg()
                            res = hs_round(port, args.clients, mode == 'resumed', args.seconds,
                                           len(rows) + 1 + 40 * args.certs.index(kind))
                            res['server_cpu'] = (srv.cpu_ticks() - cpu0) / tick
                            res['load'] = la
                            loads.append(la)
                            if name == 'buzon':
                                time.sleep(0.3)
                                res['log_yes'] = b.log_count(b'resumed=yes') - yes0
                                res['log_est'] = b.log_count(b'tls established') - est0
                            rows.append((kind, mode, r + 1, name, res))
                            log('tls-bench: %s %s round %d %-7s %7.1f/s reused %d of %d errors %d%s; '
                                'server CPU %.2f s, clients %.2f s; load %s' % (
                                    kind, mode, r + 1, name, res['rate'], res['reused'], res['n'], res['errors'],
                                    (' (buzon log: %d established, %d resumed=yes)' % (res['log_est'],
                                                                                        res['log_yes'])
                                     if name == 'buzon' else ''), res['server_cpu'], res['client_cpu'], la))
            finally:
                rc = b.stop()
                dv.stop()
                if rc != 0:
                    log('tls-bench: buzon exited with %s' % rc)
                    ok = False
        dv_version = dv.version()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log('tls-bench: kept ' + tmp)

    print('\nTLS handshakes per second, IMAP implicit TLS (handshake + greeting + close), %d client processes, '
          '%d s per measurement, %d rounds alternating buzon/Dovecot; %s' % (args.clients, args.seconds, args.rounds,
                                                                          machine()))
    print('Dovecot %s (login processes: %s mode); load averages during the runs: %s .. %s' % (
        dv_version, args.dovecot_login, loads[0], loads[-1]))
    for kind in args.certs:
        for mode in ('full', 'resumed'):
            print('\n%s certificate, %s handshakes' % ('ECDSA P-256' if kind == 'ecdsa' else 'RSA-2048', mode))
            hdr = '%-8s %10s %10s %10s  %-36s %14s %12s' % ('server', 'median/s', 'min/s', 'max/s', 'rounds/s',
                                                          'srv CPU ms/hs', 'reused')
            print(hdr)
            print('-' * len(hdr))
            med = {}
            for name in ('buzon', 'dovecot'):
                rs = [x[4] for x in rows if x[0] == kind and x[1] == mode and x[3] == name]
                rates = [x['rate'] for x in rs]
                med[name] = statistics.median(rates)
                cpu = statistics.median(x['server_cpu'] * 1000 / max(x['n'], 1) for x in rs)
                print('%-8s %10.1f %10.1f %10.1f  %-36s %14.3f %12s' % (
                    name, med[name], min(rates), max(rates), ' '.join('%.0f' % x for x in rates), cpu,
                    '%d/%d' % (sum(x['reused'] for x in rs), sum(x['n'] for x in rs))))
                info = next((x['info'] for x in rs if x['info']), None)
                print('%-8s negotiated %s; client CPU per round %s s; errors %d%s' % (
                    '', info, ' '.join('%.1f' % x['client_cpu'] for x in rs), sum(x['errors'] for x in rs),
                    (' (first: %s)' % next(x['first_err'] for x in rs if x['first_err'])
                     if any(x['first_err'] for x in rs) else '')))
                if name == 'buzon':
                    print('%-8s buzon log: %d "tls established", %d of them resumed=yes' % (
                        '', sum(x['log_est'] for x in rs), sum(x['log_yes'] for x in rs)))
            verdict = med['buzon'] >= med['dovecot']
            print('target buzon >= Dovecot: %s (%.0f vs %.0f/s, ratio %.2f)' % (
                'met' if verdict else 'MISSED', med['buzon'], med['dovecot'], med['buzon'] / med['dovecot']))
            ok &= verdict
            # checks
            for x in rows:
                if x[0] != kind or x[1] != mode:
                    continue
                res = x[4]
                if res['n'] == 0 or res['errors'] > res['n'] // 100:
                    print('CHECK FAILED: %s round %d: %d handshakes, %d errors (%s)' % (x[3], x[2], res['n'],
                                                                                    res['errors'], res['first_err']))
                    ok = False
                if x[3] == 'buzon':
                    # the log also counts the clients' set-up handshakes (full ones)
                    if mode == 'resumed' and (res['reused'] != res['n'] or res['log_yes'] < res['reused']):
                        print('CHECK FAILED: buzon round %d: %d handshakes, client reused %d, log resumed=yes %d' %
                              (x[2], res['n'], res['reused'], res['log_yes']))
                        ok = False
                    if mode == 'full' and (res['reused'] or res['log_yes']):
                        print('CHECK FAILED: buzon full round %d resumed %d (log %d)' % (x[2], res['reused'],
                                                                                       res['log_yes']))
                        ok = False
                elif mode == 'resumed' and res['reused'] != res['n']:
                    print('note: Dovecot round %d resumed %d of %d handshakes (the rest were full)' % (
                        x[2], res['reused'], res['n']))
    return 0 if ok else 1


# ----------------------------------------------------------------------------
# idle over TLS and in clear text


class Idler:
    __slots__ = ('sock', 'buf', 'state', 'user', 'exists', 't_exists', 'tls')

    def __init__(self, sock, user, tls):
        self.sock = sock
        self.buf = b''
        self.state = 'handshake' if tls else 'greeting'
        self.user = user
        self.exists = None
        self.t_exists = None
        self.tls = tls


def bench_idle(args):
    n, nusers = args.sessions, args.users
    lim = raise_nofile(2 * n + 1000)
    log('tls-bench: RLIMIT_NOFILE %s' % (lim,))
    if lim[0] < 2 * n + 200:
        log('tls-bench: cannot open %d sockets (RLIMIT_NOFILE %s)' % (2 * n, lim))
        return 2
    if not ensure_tools():
        return 2
    users = ['u%02d' % i for i in range(nusers)]
    tmp = tempfile.mkdtemp(prefix='tls-bench-idle-')
    os.chmod(tmp, 0o755)
    cert = make_cert(tmp, args.idle_cert)
    os.makedirs(os.path.join(tmp, 'buzon'))
    b = Buzon(args.buzon, os.path.join(tmp, 'buzon'), users, cert,
              [('mx', 'smtp', 'none'), ('imap', 'imap', 'none'), ('imaps', 'imap', 'implicit')],
              server_extra='max_connections = %d\nmax_connections_per_ip = %d\n' % (n + 300, n + 300))
    for u in users:
        b.fill(u, ib.make_messages(1, seed=7))
    b.start()
    pid = b.proc.pid
    ctx = client_context()
    sel = selectors.DefaultSelector()
    idlers = []
    failed = []
    counters = {'ready': 0, 'pending': 0}
    la0 = loadavg()

    def advance(it, line):
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
            counters['ready'] += 1
            return True
        elif it.state == 'idling':
            m = re.match(rb'^\* (\d+) EXISTS$', line)
            if m and it.t_exists is None:
                it.exists = int(m.group(1))
                it.t_exists = time.monotonic()
        return False

    def drop(it, why):
        try:
            sel.unregister(it.sock)
        except (KeyError, ValueError):
            pass
        failed.append((it.state, why))
        if it.state != 'idling':
            counters['pending'] -= 1
        it.state = 'failed'
        try:
            it.sock.close()
        except OSError:
            pass

    def handle(it):
        if it.state == 'handshake':
            try:
                it.sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except (OSError, ssl.SSLError) as e:
                drop(it, 'handshake: %r' % e)
                return
            it.state = 'greeting'
        while True:
            try:
                chunk = it.sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except (OSError, ssl.SSLError) as e:
                chunk = b''
            if not chunk:
                drop(it, 'closed')
                return
            it.buf += chunk
            while b'\r\n' in it.buf:
                line, it.buf = it.buf.split(b'\r\n', 1)
                try:
                    if advance(it, line):
                        counters['pending'] -= 1
                except (RuntimeError, OSError, ssl.SSLError) as e:
                    drop(it, str(e))
                    return
            if not it.tls:
                break

    def pump(timeout):
        for key, _ in sel.select(timeout):
            handle(key.data)

    def open_set(port, tls, count):
        """Opens count sessions (at most 200 logging in at a time); returns
        (ready, seconds)."""
        t0 = time.monotonic()
        deadline = t0 + args.timeout
        ready0, failed0 = counters['ready'], len(failed)
        opened = 0
        while counters['ready'] - ready0 + len(failed) - failed0 < count and time.monotonic() < deadline:
            while opened < count and counters['pending'] < 200:
                k = len(idlers)
                # many source addresses, as many clients would come from
                src = '127.0.%d.%d' % (1 + (k // 100) // 250, 1 + (k // 100) % 250)
                s = socket.create_connection(('127.0.0.1', port), timeout=10, source_address=(src, 0))
                s.setblocking(False)
                if tls:
                    s = ctx.wrap_socket(s, do_handshake_on_connect=False)
                it = Idler(s, users[opened % nusers], tls)
                idlers.append(it)
                sel.register(s, selectors.EVENT_READ, it)
                opened += 1
                counters['pending'] += 1
                if tls:
                    handle(it)  # sends the ClientHello
            pump(0.5)
        return counters['ready'] - ready0, time.monotonic() - t0

    order = [('TLS', b.port['imaps'], True), ('plain', b.port['imap'], False)]
    if not args.tls_first:
        order.reverse()
    phases = []
    try:
        time.sleep(1.5)
        rss = rss_kib(pid)
        phases.append(('before', rss, 0, 0.0))
        for name, port, tls in order:
            got, secs = open_set(port, tls, n)
            time.sleep(2.5)  # the server trims its heap after a second without input
            rss = rss_kib(pid)
            phases.append((name, rss, got, secs))
            log('tls-bench: %d %s sessions idling after %.1f s, RSS %s' % (got, name, secs, rss))
        fds = len(os.listdir('/proc/%d/fd' % pid))

        # one delivery to every user, 100 recipients a transaction
        t0 = time.monotonic()
        refused = {}
        t_250_of = {}
        with smtplib.SMTP('127.0.0.1', b.port['mx'], timeout=60) as smtp:
            for k in range(0, nusers, 100):
                batch = users[k:k + 100]
                refused.update(smtp.sendmail('bench@client.example.org', ['%s@%s' % (u, DOMAIN) for u in batch],
                                             b'From: bench@client.example.org\r\nSubject: wake up\r\n\r\nhello\r\n'))
                t = time.monotonic()
                for u in batch:
                    t_250_of[u] = t
        t_250 = time.monotonic()
        idling = [it for it in idlers if it.state == 'idling']
        wait_until = t_250 + args.notify_timeout
        while time.monotonic() < wait_until and any(it.t_exists is None for it in idling):
            pump(0.2)
        rss_after = rss_kib(pid)
        heard = {}
        for kind in (True, False):
            grp = [it for it in idling if it.tls == kind]
            got = [it for it in grp if it.t_exists is not None and it.exists == 2]
            lat = sorted(it.t_exists - t_250_of[it.user] for it in got)
            heard[kind] = (len(got), len(grp), lat)
        la1 = loadavg()
        for it in idlers:
            try:
                it.sock.close()
            except OSError:
                pass
    finally:
        rc = b.stop()
        if args.keep:
            log('tls-bench: kept ' + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print('\n%d IMAP sessions in IDLE over implicit TLS and %d in clear text on the same buzon (%d users), %s' % (
        n, n, nusers, machine()))
    print('certificate %s; load average %s at the start, %s at the end' % (args.idle_cert, la0, la1))
    ok = True
    prev = phases[0][1]['VmRSS']
    print('%-48s %.1f MiB' % ('buzon VmRSS before', prev / 1024))
    per = {}
    for name, rss, got, secs in phases[1:]:
        per[name] = (rss['VmRSS'] - prev) / max(got, 1)
        print('%-48s %.1f MiB (VmHWM %.1f MiB): +%.1f KiB per session; %d of %d idling, set up in %.1f s' % (
            'buzon VmRSS after the %s sessions' % name, rss['VmRSS'] / 1024, rss['VmHWM'] / 1024, per[name], got, n,
            secs))
        prev = rss['VmRSS']
        if got < n:
            print('CHECK FAILED: only %d of %d %s sessions idling (failures: %s)' % (got, n, name, failed[:3]))
            ok = False
    print('%-48s %d' % ('buzon open fds', fds))
    print('%-48s %d transaction(s), refused %r, last 250 after %.1f ms' % (
        'SMTP delivery to %d users' % nusers, (nusers + 99) // 100, refused, (t_250 - t0) * 1000))
    for kind, name in ((True, 'TLS'), (False, 'plain')):
        got, total, lat = heard[kind]
        if lat:
            print('%-48s %d of %d; after the 250: median %.1f ms, p99 %.1f ms, max %.1f ms' % (
                '%s idlers that heard "* 2 EXISTS"' % name, got, total, statistics.median(lat) * 1000,
                lat[max(int(len(lat) * 0.99) - 1, 0)] * 1000, lat[-1] * 1000))
        else:
            print('%-48s 0 of %d' % ('%s idlers that heard "* 2 EXISTS"' % name, total))
        if got < total or total < n:
            print('CHECK FAILED: %d of %d %s idlers heard the delivery' % (got, n, name))
            ok = False
    print('%-48s %.1f MiB' % ('buzon VmRSS after the delivery', rss_after['VmRSS'] / 1024))
    print('%-48s %s' % ('buzon exit on SIGTERM', rc))
    if per['TLS'] < 40:
        print('target < 40 KiB per idle TLS session: met (%.1f KiB; plain %.1f KiB)' % (per['TLS'], per['plain']))
    else:
        print('target < 40 KiB per idle TLS session: MISSED (%.1f KiB; plain %.1f KiB)' % (per['TLS'],
                                                                                         per['plain']))
        ok = False
    if rc != 0:
        ok = False
    return 0 if ok else 1


# ----------------------------------------------------------------------------
# SMTP delivery rate, TLS vs plain


def smtp_body(i, k):
    line = ('%d.%d lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor' % (k, i))[:70]
    body = '\r\n'.join(line for _ in range(56))
    msg = ('From: sender%d@client.example.org\r\nTo: u%02d@%s\r\nSubject: bench %d.%d\r\n'
           'Message-ID: <%d.%d@client.example.org>\r\n\r\n%s\r\n' % (k, k, DOMAIN, k, i, k, i, body))
    return msg.encode()[:4096] if len(msg) > 4096 else msg.encode()


def smtp_worker(port, mode, k, nmsg, start_at, conn):
    ctx = client_context()
    out = {'sent': 0, 'err': None, 'tls': None}
    try:
        while time.time() < start_at:
            time.sleep(0.001)
        if mode == 'implicit':
            s = smtplib.SMTP_SSL('127.0.0.1', port, timeout=60, context=ctx)
            s.ehlo('client%d.example.org' % k)
        else:
            s = smtplib.SMTP('127.0.0.1', port, timeout=60)
            s.ehlo('client%d.example.org' % k)
            if mode == 'starttls':
                s.starttls(context=ctx)
                s.ehlo('client%d.example.org' % k)
        if isinstance(s.sock, ssl.SSLSocket):
            out['tls'] = s.sock.version()
        rcpt = 'u%02d@%s' % (k, DOMAIN)
        for i in range(nmsg):
            s.sendmail('sender%d@client.example.org' % k, [rcpt], smtp_body(i, k))
            out['sent'] += 1
        s.quit()
    except Exception as e:  # reported to the parent, which fails loudly
        out['err'] = repr(e)
    conn.send(out)
    conn.close()


def count_new(b, users):
    n = 0
    for u in users:
        for sub in ('new', 'cur'):
            try:
                n += len(os.listdir(os.path.join(b.maildir(u), sub)))
            except FileNotFoundError:
                pass
    return n


def bench_smtp(args):
    if not ensure_tools():
        return 2
    c, m = args.smtp_sessions, args.messages
    users = ['u%02d' % i for i in range(c)]
    tmp = tempfile.mkdtemp(prefix='tls-bench-smtp-')
    os.chmod(tmp, 0o755)
    cert = make_cert(tmp, 'ecdsa')
    os.makedirs(os.path.join(tmp, 'buzon'))
    # "mx" takes the default tls of a listener with a certificate
    # configured: STARTTLS offered, not required
    b = Buzon(args.buzon, os.path.join(tmp, 'buzon'), users, cert,
              [('mx', 'smtp', None), ('smtps', 'smtp', 'implicit')])
    b.start()
    rows = []
    ok = True
    try:
        with smtplib.SMTP('127.0.0.1', b.port['mx'], timeout=30) as s:
            s.ehlo('probe.example.org')
            has_starttls = s.has_extn('starttls')
        tls_mode = args.smtp_tls
        if tls_mode == 'auto':
            tls_mode = 'starttls' if has_starttls else 'implicit'
        log('tls-bench: EHLO on the plain listener %s STARTTLS: TLS runs use %s' % (
            'advertises' if has_starttls else 'does not advertise', tls_mode))
        mp = multiprocessing.get_context('fork')
        for r in range(args.rounds):
            for name in ('plain', 'tls'):
                mode = tls_mode if name == 'tls' else 'plain'
                port = b.port['smtps'] if mode == 'implicit' else b.port['mx']
                base = count_new(b, users)
                la = loadavg()
                start_at = time.time() + 0.5
                procs = []
                for k in range(c):
                    a, w = mp.Pipe(False)
                    p = mp.Process(target=smtp_worker, args=(port, mode, k, m, start_at, w))
                    p.start()
                    procs.append((p, a))
                results = []
                for p, a in procs:
                    if a.poll(args.timeout):
                        results.append(a.recv())
                    p.join(30)
                want = base + c * m
                deadline = time.time() + args.timeout
                have = count_new(b, users)
                while have < want and time.time() < deadline:
                    time.sleep(0.005)
                    have = count_new(b, users)
                t = time.time() - start_at
                errs = [x['err'] for x in results if x['err']]
                tlsv = sorted(set(str(x['tls']) for x in results))
                res = {'rate': (have - base) / t, 'secs': t, 'arrived': have - base, 'want': c * m, 'errs': errs,
                       'tls': tlsv, 'load': la, 'mode': mode}
                rows.append((r + 1, name, res))
                log('tls-bench: round %d %-5s (%s) %d of %d messages in %.2f s: %.1f msg/s; TLS %s; load %s%s' % (
                    r + 1, name, mode, have - base, c * m, t, res['rate'], tlsv, la,
                    ('; errors %s' % errs[:2]) if errs else ''))
                if errs or len(results) != c or have != want:
                    ok = False
                if name == 'tls' and tlsv != ['TLSv1.3'] and tlsv != ['TLSv1.2']:
                    ok = False
                if name == 'plain' and tlsv != ['None']:
                    ok = False
        # one delivered message, to show what the Received line says
        sample = None
        md = os.path.join(b.maildir(users[0]), 'new')
        for f in sorted(os.listdir(md))[-1:]:
            with open(os.path.join(md, f), 'rb') as fh:
                mr = re.search(rb'^Received:.*?(?=\n\S)', fh.read(2000), re.M | re.S)
                sample = re.sub(rb'\s+', b' ', mr.group(0)).decode() if mr else None
    finally:
        rc = b.stop()
        if args.keep:
            log('tls-bench: kept ' + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print('\nSMTP delivery of 4 KiB messages: %d sessions at once, %d messages each in one session, %d rounds '
          'alternating plain/TLS; %s' % (c, m, args.rounds, machine()))
    print('TLS = %s (%s), ECDSA P-256 certificate' % (
        tls_mode, 'STARTTLS on the plain listener' if tls_mode == 'starttls' else
        'SMTP over implicit TLS on a second listener: STARTTLS not advertised by this build'))
    hdr = '%-6s %10s %10s %10s  %s' % ('', 'median', 'min', 'max', 'rounds (msg/s)')
    print(hdr)
    print('-' * len(hdr))
    med = {}
    for name in ('plain', 'tls'):
        rates = [x[2]['rate'] for x in rows if x[1] == name]
        med[name] = statistics.median(rates)
        print('%-6s %10.1f %10.1f %10.1f  %s' % (name, med[name], min(rates), max(rates),
                                                   ' '.join('%.1f' % x for x in rates)))
    print('TLS / plain: %.3f; load averages %s' % (med['tls'] / med['plain'], ', '.join(x[2]['load'] for x in rows)))
    print('Received line of the last message (user u00): %s' % (sample,))
    for rn, name, res in rows:
        if res['errs'] or res['arrived'] != res['want']:
            print('CHECK FAILED: round %d %s: %d of %d arrived, errors %s' % (rn, name, res['arrived'], res['want'],
                                                                          res['errs'][:3]))
    if rc != 0:
        print('CHECK FAILED: buzon exit %s' % rc)
        ok = False
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--buzon', help='the buzon binary (default: build/server/buzon)')
    ap.add_argument('--sessions', type=int, default=5000, help='idle: sessions of each kind (TLS, plain)')
    ap.add_argument('--users', type=int, default=10)
    ap.add_argument('--idle-cert', choices=['ecdsa', 'rsa'], default='ecdsa')
    ap.add_argument('--tls-first', action='store_true', help='idle: open the TLS sessions before the plain ones')
    ap.add_argument('--timeout', type=float, default=1200, help='seconds to set up a set of idlers / to deliver')
    ap.add_argument('--notify-timeout', type=float, default=20)
    ap.add_argument('--rounds', type=int, default=4)
    ap.add_argument('--seconds', type=float, default=5, help='handshakes: seconds per measurement')
    ap.add_argument('--clients', type=int, default=4, help='handshakes: client processes')
    ap.add_argument('--certs', default='ecdsa,rsa')
    ap.add_argument('--dovecot-login', choices=['performance', 'security'], default='performance')
    ap.add_argument('--smtp-sessions', type=int, default=10)
    ap.add_argument('--messages', type=int, default=200, help='smtp: messages per session')
    ap.add_argument('--smtp-tls', choices=['auto', 'starttls', 'implicit'], default='auto')
    ap.add_argument('--keep', action='store_true', help='keep the temp dirs')
    ap.add_argument('what', choices=['idle', 'handshakes', 'smtp', 'all'])
    args = ap.parse_args()
    args.certs = args.certs.split(',')
    args.buzon = os.path.abspath(ib.find_buzon(args.buzon))
    with open(args.buzon, 'rb') as f:
        if b'__asan_init' in f.read():
            log('tls-bench: %s is a sanitizer build: numbers will not mean much' % args.buzon)
    log('tls-bench: buzon %s; %s; load %s' % (args.buzon, machine(), loadavg()))
    rc = 0
    if args.what in ('handshakes', 'all'):
        rc = max(rc, bench_handshakes(args))
    if args.what in ('smtp', 'all'):
        rc = max(rc, bench_smtp(args))
    if args.what in ('idle', 'all'):
        rc = max(rc, bench_idle(args))
    return rc


if __name__ == '__main__':
    sys.exit(main())
