"""Helpers for buzon's integration tests.

The tests start the real binary (BUZON_BIN, set by tests/integration/meson.build)
on ports it picks itself (port 0; the chosen port is read back from the
"listening" log line), talk to it with real clients over loopback, and read
the Maildirs it writes. Standard library only: the tests run with Debian's
/usr/bin/python3 and unittest.
"""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))

HOSTNAME = 'mx.example.test'
DOMAIN = 'example.test'
PASSWORD = 'correct horse battery staple'
ALICE = 'alice@' + DOMAIN

# Listeners for write_config(listeners=...): an SMTP listener "mx" and an
# IMAP listener "imap" or a POP3 listener "pop", on ports the server picks.
IMAP_LISTENERS = {'mx': '127.0.0.1:0', 'imap': ('imap', '127.0.0.1:0')}
POP3_LISTENERS = {'mx': '127.0.0.1:0', 'pop': ('pop3', '127.0.0.1:0')}

SANITIZER_RE = re.compile(
    r'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|'
    r'WARNING: AddressSanitizer|SUMMARY: (Address|Leak|Undefined)')
ENHANCED_RE = re.compile(r'^[245]\.\d{1,3}\.\d{1,3}(\s|$)')


def buzon_bin():
    """The binary under test: $BUZON_BIN, or the newest build*/server/buzon."""
    path = os.environ.get('BUZON_BIN')
    if path:
        return path
    found = sorted(glob.glob(os.path.join(SRC_ROOT, 'build*', 'server', 'buzon')),
                   key=os.path.getmtime)
    if not found:
        raise RuntimeError('set BUZON_BIN to the buzon binary (no build*/server/buzon found)')
    return found[-1]


def _sanitized():
    if os.environ.get('BUZON_SANITIZERS') in ('1', 'true'):
        return True
    try:
        with open(buzon_bin(), 'rb') as f:
            return b'__asan_init' in f.read()
    except OSError:
        return False


SANITIZED = _sanitized()
# Time allowances grow under ASan/UBSan, which makes everything slower.
SCALE = 3.0 if SANITIZED else 1.0


def scaled(seconds):
    return seconds * SCALE


def subprocess_env():
    env = dict(os.environ)
    env.setdefault('ASAN_OPTIONS', 'halt_on_error=1:detect_leaks=1:abort_on_error=0')
    env.setdefault('UBSAN_OPTIONS', 'halt_on_error=1:print_stacktrace=1')
    env['LC_ALL'] = 'C'
    return env


# ----------------------------------------------------------------------------
# SMTP over a raw socket


class Reply:
    """One SMTP reply: code and the text of each line (without the code)."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def enhanced(self):
        """The enhanced status code of the first line ("5.1.1"), or None."""
        m = ENHANCED_RE.match(self.lines[0]) if self.lines else None
        return m.group(0).strip() if m else None

    def all_lines_enhanced(self):
        return all(ENHANCED_RE.match(l) for l in self.lines)

    def __repr__(self):
        return 'Reply(%r)' % self.raw

    __str__ = __repr__


class SMTPClosed(Exception):
    pass


class RawSocket:
    """What the raw clients share: self.sock, closing, sending bytes or str."""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode('utf-8'))

    def start_tls(self, context, server_hostname='127.0.0.1'):
        """The TLS handshake over this connection (after STARTTLS/STLS was
        accepted). The server must have sent nothing after its reply."""
        if self.buf:
            raise AssertionError('clear-text bytes after the STARTTLS reply: %r' % self.buf[:200])
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    def nothing_pending(self, seconds=0.5):
        """True when the server sends nothing within seconds (and has not closed)."""
        if self.buf:
            return False
        before = self.sock.gettimeout()
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(before)
        self.buf += chunk
        return False

    def wait_closed(self, timeout):
        """True when the server closes the connection within timeout seconds;
        what it sends meanwhile goes to self.buf."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


class RawSMTP(RawSocket):
    """A byte-exact SMTP client: we choose every octet that goes out."""

    def __init__(self, addr, timeout=10.0, source=None, read_greeting=True, tls=None):
        host, port = addr
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(scaled(timeout))
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        if tls is not None:     # implicit TLS: an ssl.SSLContext
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.buf = b''
        self.eof = False
        self.greeting = self.reply() if read_greeting else None


    def settimeout(self, seconds):
        self.sock.settimeout(scaled(seconds))


    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b''
        if not chunk:
            self.eof = True
            raise SMTPClosed('connection closed by server (pending %r)' % self.buf)
        self.buf += chunk

    def line(self):
        while b'\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\n', 1)
        if not line.endswith(b'\r'):
            raise AssertionError('reply line not ended by CRLF: %r' % line)
        return line[:-1].decode('utf-8', 'replace')

    def reply(self):
        lines, raw = [], []
        while True:
            l = self.line()
            raw.append(l)
            if len(l) < 3 or not l[:3].isdigit() or (len(l) > 3 and l[3] not in ' -'):
                raise AssertionError('malformed reply line %r' % l)
            lines.append(l[4:])
            if len(l) == 3 or l[3] == ' ':
                return Reply(int(l[:3]), lines, '\r\n'.join(raw))

    def cmd(self, line):
        self.send(line + '\r\n' if isinstance(line, str) else line + b'\r\n')
        return self.reply()

    def ehlo(self, name='client.example.org'):
        return self.cmd('EHLO ' + name)

    def replies_until_close(self, limit=100):
        """Reads replies until the server closes; returns them."""
        out = []
        try:
            while len(out) < limit:
                out.append(self.reply())
        except (SMTPClosed, socket.timeout, OSError):
            pass
        return out

    def closed_within(self, seconds):
        """True when the server closes the connection within scaled(seconds)."""
        return self.wait_closed(scaled(seconds))

    def send_message(self, mail_from, rcpts, data, ehlo=True):
        """MAIL/RCPT/DATA with data already dot-stuffed, ending in CRLF; returns the final reply."""
        if ehlo:
            r = self.ehlo()
            assert r.code == 250, r
        r = self.cmd('MAIL FROM:<%s>' % mail_from)
        assert r.code == 250, r
        for rc in rcpts:
            r = self.cmd('RCPT TO:<%s>' % rc)
            assert r.code == 250, r
        r = self.cmd('DATA')
        assert r.code == 354, r
        self.send(data + b'.\r\n')
        return self.reply()


def dot_stuff(msg):
    """CRLF message -> DATA payload (lines starting with '.' get another)."""
    lines = msg.split(b'\r\n')
    return b'\r\n'.join(b'.' + l if l.startswith(b'.') else l for l in lines)


def make_message(subject='test', body=b'hello\r\n', extra=b'', msgid=None):
    """A small RFC 5322 message with CRLF line ends."""
    msgid = msgid or ('<%d.%d@client.example.org>' % (time.time_ns(), os.getpid()))
    head = (b'From: Sender <sender@client.example.org>\r\n'
            b'To: Someone <alice@example.test>\r\n'
            b'Subject: ' + subject.encode('utf-8') + b'\r\n'
            b'Message-ID: ' + msgid.encode() + b'\r\n'
            b'Date: Sat, 28 Nov 2026 18:53:08 +0000\r\n' + extra)
    return head + b'\r\n' + body


# ----------------------------------------------------------------------------
# IMAP over a raw socket

IMAP_LITERAL_RE = re.compile(rb'\{(\d+)\+?\}$')


class IMAPClosed(EOFError):
    pass


def after_tag(line):
    """The text of a tagged reply line after its tag: "a001 OK done" -> "OK done"."""
    return line.split(b' ' if isinstance(line, bytes) else ' ', 1)[1]


class RawIMAP(RawSocket):
    """A byte-exact IMAP client: we write every octet; every reply line must
    end in CRLF (a bare LF is an AssertionError). Server literals ({n}) are
    read and kept inside the line that announces them.

    Commands sent by command() get the tags a001, a002, ... (self.n counts
    them). Replies come back as str, decoded as latin-1 so that every octet
    survives, or as bytes with binary=True; line() and the greeting are
    always bytes. The timeout is scaled(); settimeout() and closed_within()
    take their seconds as they are.
    """

    def __init__(self, addr, timeout=20.0, binary=False, tls=None):
        self.sock = socket.create_connection(addr, timeout=scaled(timeout))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:     # implicit TLS: an ssl.SSLContext
            self.sock = tls.wrap_socket(self.sock, server_hostname=addr[0])
        self.binary = binary
        self.buf = b''
        self.n = 0
        self.greeting = self.line()


    def settimeout(self, seconds):
        self.sock.settimeout(seconds)


    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            chunk = b''
        if not chunk:
            raise IMAPClosed('connection closed by server (pending %r)' % self.buf[:200])
        self.buf += chunk

    def _text(self, data):
        return data if self.binary else data.decode('latin-1')

    def raw_line(self):
        """One physical line without its CRLF (bytes)."""
        while b'\r\n' not in self.buf:
            if b'\n' in self.buf:
                raise AssertionError('bare LF in reply: %r' % self.buf[:200])
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        if b'\n' in line:
            raise AssertionError('bare LF in reply line %r' % line[:200])
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self):
        """One logical response line (bytes): literals are kept in it as
        {n}\\r\\n<n octets> followed by the rest of the line."""
        line = self.raw_line()
        while True:
            m = IMAP_LITERAL_RE.search(line)
            if not m:
                return line
            data = self.read_exact(int(m.group(1)))
            line = line + b'\r\n' + data + self.raw_line()

    def tag(self):
        self.n += 1
        return 'a%03d' % self.n

    def command(self, text, tag=None):
        """Sends "TAG text"; returns (untagged lines, tagged line)."""
        tag = tag or self.tag()
        self.send(tag.encode() + b' ' + (text if isinstance(text, bytes) else text.encode()) + b'\r\n')
        return self.until_tagged(tag)

    def cmd(self, text, tag=None):
        """command(), with the text of the tagged line after its tag ("OK ...")."""
        untagged, tagged = self.command(text, tag)
        return untagged, after_tag(tagged)

    def until_tagged(self, tag):
        """Reads up to the tagged line of tag; returns (untagged lines, tagged line)."""
        want = tag.encode() + b' '
        untagged = []
        while True:
            l = self.line()
            if l.startswith(want):
                return untagged, self._text(l)
            untagged.append(self._text(l))

    def ok(self, text):
        """command() that must end in a tagged OK (else an AssertionError)."""
        untagged, tagged = self.command(text)
        if not re.match(r'^\S+ OK\b', tagged if isinstance(tagged, str) else tagged.decode('latin-1')):
            raise AssertionError('%r -> %r (untagged %r)' % (text, tagged, untagged[-3:]))
        return untagged, tagged

    def login(self, user=ALICE, password=PASSWORD):
        return self.ok('LOGIN "%s" "%s"' % (user, password))

    def append_sync(self, tag, head, data):
        """APPEND with a synchronizing literal: waits for "+" before the data.

        head is what stands between APPEND and the literal ("INBOX (\\Seen)").
        Returns (untagged lines, the tagged text after the tag); when the
        server answers the literal with anything but "+": ([], that reply,
        after the tag when it is the tagged one)."""
        self.send(b'%s APPEND %s {%d}\r\n' % (tag.encode(), head.encode(), len(data)))
        l = self.line()
        if not l.startswith(b'+'):
            return [], self._text(after_tag(l) if l.startswith(tag.encode() + b' ') else l)
        self.send(data + b'\r\n')
        untagged, tagged = self.until_tagged(tag)
        return untagged, after_tag(tagged)

    def lines_until_close(self, limit=1000):
        """Reads lines until the server closes (or the timeout); returns them."""
        out = []
        try:
            while len(out) < limit:
                out.append(self._text(self.line()))
        except (IMAPClosed, socket.timeout, OSError):
            pass
        return out

    def closed_within(self, seconds):
        """True when the server closes the connection within seconds (as given)."""
        return self.wait_closed(seconds)


# ----------------------------------------------------------------------------
# POP3 over a raw socket


class RawPOP3(RawSocket):
    """A byte-exact POP3 client: every reply line must end in CRLF.
    tls: an ssl.SSLContext for implicit TLS (the greeting comes inside)."""

    def __init__(self, addr, timeout=20.0, tls=None):
        self.sock = socket.create_connection(addr, timeout=scaled(timeout))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=addr[0])
        self.buf = b''
        self.greeting = self.line()

    def line(self):
        while b'\r\n' not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b''
            if not chunk:
                raise EOFError('connection closed; pending %r' % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        if b'\n' in line:
            raise AssertionError('bare LF in reply line %r' % line)
        return line

    def cmd(self, line):
        self.send((line if isinstance(line, bytes) else line.encode()) + b'\r\n')
        return self.line()

    def multi(self):
        """The lines of a multi-line reply after its status line, unstuffed."""
        out = []
        while True:
            l = self.line()
            if l == b'.':
                return out
            out.append(l[1:] if l.startswith(b'.') else l)

    def capa(self):
        r = self.cmd('CAPA')
        assert r.startswith(b'+OK'), r
        return [l.decode('latin-1') for l in self.multi()]

    def login(self, user=ALICE, password=PASSWORD):
        r = self.cmd('USER ' + user)
        assert r.startswith(b'+OK'), r
        return self.cmd('PASS ' + password)


# ----------------------------------------------------------------------------
# Delivered files

ADDED_HEADERS = ('return-path', 'delivered-to', 'received')


def split_delivered(data):
    """Splits a delivered file into (added headers, the message as sent).

    The added headers are the leading Return-Path, Delivered-To and Received
    fields (with their continuation lines). Returns a list of (name, value)
    with names lower-cased and values unfolded, and the remaining bytes.
    """
    headers = []
    pos = 0
    while pos < len(data):
        eol = data.find(b'\n', pos)
        if eol < 0:
            break
        line = data[pos:eol]
        if line[:1] in (b' ', b'\t') and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + ' ' + line.strip().decode('utf-8', 'replace'))
            pos = eol + 1
            continue
        name, colon, value = line.partition(b':')
        if colon and name.strip().lower().decode('ascii', 'replace') in ADDED_HEADERS:
            headers.append((name.strip().lower().decode(), value.strip().decode('utf-8', 'replace')))
            pos = eol + 1
            continue
        break
    return headers, data[pos:]


def body_of(data):
    """The message part of a delivered file (after the added headers)."""
    return split_delivered(data)[1]


def stored_form(msg_crlf):
    """What buzon stores for a message sent with CRLF line ends."""
    return msg_crlf.replace(b'\r\n', b'\n')


# ----------------------------------------------------------------------------
# The server


def as_service_user(path):
    """Gives path to the service user buzon runs as when the tests run as
    root (started as root, buzon serves as `buzon`): a file dropped into a
    Maildir by "another Maildir writer" belongs to the mail user, as
    procmail's or an MDA's would. Does nothing for other users."""
    if os.geteuid() != 0:
        return
    import pwd
    try:
        pw = pwd.getpwnam('buzon')
    except KeyError:
        return
    os.chown(path, pw.pw_uid, pw.pw_gid)


class Server:
    """One buzon instance with its own data_dir and config file."""

    def __init__(self, workdir=None):
        self.tmp = workdir or tempfile.mkdtemp(prefix='buzon-it-')
        if not workdir:
            # Started as root, buzon serves as the `buzon` user, which must
            # be able to reach data_dir through this directory.
            os.chmod(self.tmp, 0o711)
        self.data_dir = os.path.join(self.tmp, 'data')
        self.config_path = os.path.join(self.tmp, 'buzon.ini')
        self.proc = None
        self.log_lines = []
        self.log_lock = threading.Condition()
        self.listeners = {}
        self.cli_outputs = []
        self.shutdown_timeout = 10
        self.bin = buzon_bin()
        self.all_logs = []

    # -- configuration --------------------------------------------------------

    def write_config(self, server=None, smtp=None, listeners=None, raw=None, imap=None, pop3=None,
                     tls=None, auth=None):
        """Writes the config file. server, smtp, imap, pop3, tls: the keys of
        those sections ([server] has hostname, data_dir and log_level = info
        unless given); listeners: {name: "addr [addr]"} for SMTP or {name:
        (protocol, "addr [addr]")}, as IMAP_LISTENERS and POP3_LISTENERS, or
        {name: (protocol, "addr", {key: value})} for more keys of the
        listener (tls = implicit, ...); raw: text as is."""
        if raw is not None:
            text = raw
        else:
            s = {'hostname': HOSTNAME, 'data_dir': self.data_dir, 'log_level': 'info'}
            s.update(server or {})
            if 'shutdown_timeout' in s:
                self.shutdown_timeout = int(str(s['shutdown_timeout']).rstrip('s'))
            text = '[server]\n' + ''.join('%s = %s\n' % kv for kv in s.items())
            for section, keys in (('smtp', smtp), ('imap', imap), ('pop3', pop3), ('tls', tls),
                                  ('auth', auth)):
                if keys:
                    text += '\n[%s]\n' % section + ''.join('%s = %s\n' % kv for kv in keys.items())
            for name, addr in (listeners or {'mx': '127.0.0.1:0'}).items():
                extra = {}
                if isinstance(addr, tuple) and len(addr) == 3:
                    protocol, addr, extra = addr
                else:
                    protocol, addr = addr if isinstance(addr, tuple) else ('smtp', addr)
                text += '\n[listener "%s"]\nprotocol = %s\naddress = %s\n' % (name, protocol, addr)
                text += ''.join('%s = %s\n' % kv for kv in extra.items())
        with open(self.config_path, 'w') as f:
            f.write(text)
        return self.config_path

    # -- admin CLI --------------------------------------------------------------

    def cli(self, *args, input=None, config=None):
        """Runs buzon --config FILE ARGS; returns CompletedProcess (text)."""
        argv = [self.bin, '--config', config or self.config_path] + list(args)
        p = subprocess.run(argv, input=input if input is not None else '',
                           capture_output=True, text=True, env=subprocess_env(),
                           timeout=scaled(30), start_new_session=True)
        self.cli_outputs.append((argv, p.stderr))
        return p

    def cli_ok(self, *args, input=None):
        p = self.cli(*args, input=input)
        if p.returncode != 0:
            raise AssertionError('%s -> exit %d\nstdout: %s\nstderr: %s' %
                                 (' '.join(args), p.returncode, p.stdout, p.stderr))
        return p

    def add_domain(self, domain=DOMAIN):
        self.cli_ok('domain', 'add', domain)

    def add_user(self, address, password=PASSWORD, quota=None):
        args = ['user', 'add', address, '--password-stdin']
        if quota:
            args += ['--quota', quota]
        self.cli_ok(*args, input=password + '\n')

    def add_alias(self, alias, *targets):
        self.cli_ok('alias', 'add', alias, *targets)

    def setup_users(self, users=('alice', 'bob', 'carol', 'dave'), domain=DOMAIN):
        self.add_domain(domain)
        for u in users:
            self.add_user('%s@%s' % (u, domain))

    # -- process -------------------------------------------------------------------

    def _reader(self, stream):
        for raw in iter(stream.readline, b''):
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            with self.log_lock:
                self.log_lines.append(line)
                self.log_lock.notify_all()
        with self.log_lock:
            self.log_lock.notify_all()

    def start(self, wait_ready=True, timeout=15, preexec_fn=None):
        """Starts "buzon serve"; waits for "ready" and fills self.listeners.
        preexec_fn runs in the child before exec (e.g. to set an rlimit)."""
        if self.proc is not None:
            assert self.proc.poll() is not None, 'the previous server still runs'
            self._reap()
        with self.log_lock:
            if self.log_lines:
                self.all_logs.extend(self.log_lines)
            self.log_lines = []
        self.listeners = {}
        self.proc = subprocess.Popen([self.bin, '--config', self.config_path, 'serve'],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=subprocess_env(),
                                     start_new_session=True, preexec_fn=preexec_fn)
        self.reader = threading.Thread(target=self._reader, args=(self.proc.stderr,), daemon=True)
        self.reader.start()
        if not wait_ready:
            return self
        deadline = time.monotonic() + scaled(timeout)
        with self.log_lock:
            while True:
                if any('comp=server' in l and re.search(r'\bready\b', l) for l in self.log_lines):
                    break
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise AssertionError('buzon serve exited with %s before ready:\n%s' %
                                         (self.proc.returncode, self.log()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError('buzon serve not ready after %.0fs:\n%s' %
                                         (scaled(timeout), self.log()))
                self.log_lock.wait(min(left, 0.2))
            for l in self.log_lines:
                if 'comp=server' in l and re.search(r'\blistening\b', l):
                    kv = dict(re.findall(r'(\w+)=(\S+)', l))
                    self.listeners.setdefault(kv['listener'], []).append(parse_addr(kv['address']))
        if not self.listeners:
            raise AssertionError('no "listening" line in the log:\n' + self.log())
        return self

    def addr(self, listener='mx', index=0):
        return self.listeners[listener][index]

    def connect(self, listener='mx', **kw):
        return RawSMTP(self.addr(listener), **kw)

    def connect_imap(self, listener='imap', **kw):
        return RawIMAP(self.addr(listener), **kw)

    def log(self):
        with self.log_lock:
            return '\n'.join(self.log_lines)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Sends sig and waits; returns the exit code (None if still running: then kills)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            self._reap()
            return self.proc.returncode
        self.proc.send_signal(sig)
        timeout = scaled(timeout if timeout is not None else self.shutdown_timeout + 10)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.proc.kill()
            self.proc.wait()
        self._reap()
        return rc

    def _reap(self):
        self.reader.join(5)
        try:
            self.proc.stderr.close()
        except OSError:
            pass

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self._reap()

    def sanitizer_reports(self):
        text = '\n'.join(self.all_logs + self.log_lines)
        for _, err in self.cli_outputs:
            text += '\n' + err
        return [l for l in text.splitlines() if SANITIZER_RE.search(l)]

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- Maildir -----------------------------------------------------------------------

    def maildir(self, address, folder=None):
        local, domain = address.lower().rsplit('@', 1)
        path = os.path.join(self.data_dir, 'mail', domain, local)
        return os.path.join(path, '.' + folder) if folder else path

    def messages(self, address, sub='new'):
        """Contents of every file in the user's new/ (sorted by name)."""
        d = os.path.join(self.maildir(address), sub)
        if not os.path.isdir(d):
            return []
        out = []
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), 'rb') as f:
                out.append(f.read())
        return out

    def all_mail_files(self, subs=('new', 'cur', 'tmp')):
        """Every file in any tmp/new/cur under data_dir/mail."""
        out = []
        root = os.path.join(self.data_dir, 'mail')
        for dirpath, dirnames, filenames in os.walk(root):
            if os.path.basename(dirpath) in subs:
                out.extend(os.path.join(dirpath, n) for n in filenames)
        return sorted(out)

    def sids(self):
        with self.log_lock:
            text = '\n'.join(self.all_logs + self.log_lines)
        return set(re.findall(r'\bsid=([0-9A-Za-z._-]+)', text))


def parse_addr(text):
    if text.startswith('['):
        host, _, port = text[1:].partition(']:')
    else:
        host, _, port = text.rpartition(':')
    return host, int(port)


# ----------------------------------------------------------------------------
# Test case base


class BuzonTestCase(unittest.TestCase):
    """Gives each test a fresh Server; stops it and checks for sanitizer reports."""

    def new_server(self, start=True, users=True, server=None, smtp=None, listeners=None, imap=None,
                   pop3=None, tls=None, auth=None):
        """A Server (see write_config) stopped and checked after the test.
        users: True for alice, bob, carol and dave of DOMAIN, a tuple of local
        parts for those, False for no domain and no users."""
        s = Server()
        self.servers.append(s)
        s.write_config(server=server, smtp=smtp, listeners=listeners, imap=imap, pop3=pop3, tls=tls,
                       auth=auth)
        if users is True:
            s.setup_users()
        elif users:
            s.setup_users(users=users)
        if start:
            s.start()
        return s

    def setUp(self):
        self.servers = []
        self.addCleanup(self._stop_servers)

    def doCleanups(self):
        # unittest runs each clean-up as a "test part" whose own success
        # starts afresh; note here, before them, whether the test failed.
        outcome = getattr(self, '_outcome', None)
        self._test_failed = outcome is not None and not outcome.success
        return super().doCleanups()

    def _stop_servers(self):
        problems = []
        for s in self.servers:
            running = s.proc is not None and s.proc.poll() is None
            rc = s.stop()
            if running and rc != 0:
                problems.append('server did not exit 0 on SIGTERM (exit %s)' % rc)
            reports = s.sanitizer_reports()
            if reports:
                problems.append('sanitizer reports:\n' + '\n'.join(reports))
            if problems or self._test_failed:
                log = '\n'.join((s.all_logs + s.log_lines)[-60:])
                print('\n--- server log (%s, last 60 lines) ---\n%s\n---' % (s.tmp, log))
        for s in self.servers:
            s.cleanup()
        if problems:
            self.fail('; '.join(problems))

    # -- assertions --------------------------------------------------------------

    def assertReply(self, reply, code, enhanced=None):
        self.assertEqual(reply.code, code, 'expected %d, got %r' % (code, reply))
        if enhanced is not None:
            self.assertEqual(reply.enhanced, enhanced, 'expected %d %s, got %r' % (code, enhanced, reply))

    def assertNoMail(self, server, msg='nothing may be delivered'):
        files = server.all_mail_files()
        self.assertEqual(files, [], msg)

    def assertDelivered(self, server, data, sent, mail_from, rcpt, proto='ESMTP'):
        """Checks one delivered file against the message sent (CRLF form)."""
        headers, rest = split_delivered(data)
        names = [h[0] for h in headers]
        self.assertEqual(sorted(names), ['delivered-to', 'received', 'return-path'],
                         'added headers must be Return-Path, Delivered-To, Received; got %r' % headers)
        h = dict(headers)
        self.assertEqual(h['return-path'], '<%s>' % mail_from)
        self.assertEqual(h['delivered-to'].strip('<>').lower(), rcpt.lower())
        rec = h['received']
        self.assertRegex(rec, r'\bwith %s\b' % proto, 'Received: ' + rec)
        self.assertRegex(rec, r'\bby %s\b' % re.escape(HOSTNAME), 'Received: ' + rec)
        self.assertRegex(rec, r'^from ', 'Received: ' + rec)
        self.assertRegex(rec, r';\s*\S.*\d{4}', 'Received: must end with "; date": ' + rec)
        sids = server.sids()
        self.assertTrue(any(sid in rec for sid in sids),
                        'Received must carry the session id (one of %r): %s' % (sorted(sids), rec))
        self.assertEqual(rest, stored_form(sent), 'message body must be stored byte-exact')


# ----------------------------------------------------------------------------
# TLS: a test CA and certificates made with certtool (gnutls-bin)

TLS_LISTENERS = {
    'mx': ('smtp', '127.0.0.1:0', {'tls': 'starttls'}),
    'smtps': ('smtp', '127.0.0.1:0', {'tls': 'implicit'}),
    'imap': ('imap', '127.0.0.1:0', {'tls': 'starttls'}),
    'imaps': ('imap', '127.0.0.1:0', {'tls': 'implicit'}),
    'pop': ('pop3', '127.0.0.1:0', {'tls': 'starttls'}),
    'pops': ('pop3', '127.0.0.1:0', {'tls': 'implicit'}),
}


def pem_fingerprint(path):
    """The SHA-256 of the (first) certificate of a PEM file, lower-case hex."""
    import hashlib
    import ssl
    with open(path) as f:
        text = f.read()
    begin = text.index('-----BEGIN CERTIFICATE-----')
    end = text.index('-----END CERTIFICATE-----', begin) + len('-----END CERTIFICATE-----')
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(text[begin:end] + '\n')).hexdigest()


def der_fingerprint(der):
    import hashlib
    return hashlib.sha256(der).hexdigest()


class TestCA:
    """A certificate authority for the tests and certificates it signs, in
    a temporary directory that lives as long as the test process.

    self.cert/self.key: the server's pair, for HOSTNAME and 127.0.0.1
    (SAN dNSName and iPAddress), ECDSA P-256, valid for 30 days.
    self.ca_cert: what the clients trust. Files are readable by the
    service user (buzon drops to it when started as root)."""

    def __init__(self):
        import atexit
        if not shutil.which('certtool'):
            raise unittest.SkipTest('certtool is not installed (Debian package: gnutls-bin)')
        self.dir = tempfile.mkdtemp(prefix='buzon-ca-')
        os.chmod(self.dir, 0o711)
        atexit.register(shutil.rmtree, self.dir, True)
        self.n = 0
        self.ca_key = self.new_key('ca')
        self.ca_cert = os.path.join(self.dir, 'ca.pem')
        tmpl = self._template('ca', ['cn = "buzon test CA"', 'ca', 'cert_signing_key', 'crl_signing_key',
                                     'expiration_days = 30'])
        self._certtool('--generate-self-signed', '--load-privkey', self.ca_key, '--template', tmpl,
                       '--outfile', self.ca_cert)
        self._readable(self.ca_cert)
        self.cert, self.key = self.issue('server')

    def _certtool(self, *args):
        p = subprocess.run(['certtool'] + list(args), capture_output=True, text=True, timeout=30,
                           env=subprocess_env())
        if p.returncode != 0:
            raise AssertionError('certtool %s -> %d\n%s%s' % (' '.join(args), p.returncode, p.stdout, p.stderr))
        return p

    def _template(self, name, lines):
        path = os.path.join(self.dir, name + '.tmpl')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return path

    def _readable(self, path, mode=0o644):
        os.chmod(path, mode)
        as_service_user(path)

    def new_key(self, name, key_type='ecdsa'):
        path = os.path.join(self.dir, name + '.key')
        args = ['--generate-privkey', '--key-type', key_type, '--outfile', path]
        if key_type == 'rsa':
            args += ['--bits', '2048']
        self._certtool(*args)
        self._readable(path, 0o600)
        return path

    def issue(self, name=None, cn=HOSTNAME, dns=(HOSTNAME,), ips=('127.0.0.1',), days=30,
              activation=None, expiration=None, key=None, key_type='ecdsa', self_signed=False):
        """A new certificate and key signed by the CA (or self-signed):
        returns (cert path, key path). activation/expiration: dates as
        "YYYY-MM-DD HH:MM:SS" (UTC), instead of now and now + days."""
        self.n += 1
        name = name or 'cert%d' % self.n
        key = key or self.new_key(name, key_type)
        lines = ['cn = "%s"' % cn, 'serial = %d' % (1000 + self.n), 'tls_www_server', 'signing_key',
                 'encryption_key']
        lines += ['dns_name = "%s"' % d for d in dns]
        lines += ['ip_address = "%s"' % i for i in ips]
        if activation:
            lines.append('activation_date = "%s"' % activation)
        if expiration:
            lines.append('expiration_date = "%s"' % expiration)
        else:
            lines.append('expiration_days = %d' % days)
        tmpl = self._template(name, lines)
        cert = os.path.join(self.dir, name + '.pem')
        if self_signed:
            self._certtool('--generate-self-signed', '--load-privkey', key, '--template', tmpl, '--outfile', cert)
        else:
            self._certtool('--generate-certificate', '--load-privkey', key, '--load-ca-certificate',
                           self.ca_cert, '--load-ca-privkey', self.ca_key, '--template', tmpl,
                           '--outfile', cert)
        self._readable(cert)
        return cert, key

    def copy_pair(self, dest_dir, cert=None, key=None, name='server'):
        """Copies a pair (the server's by default) to dest_dir/NAME.pem and
        NAME.key, readable by the service user; returns the new paths."""
        out = []
        for src, ext, mode in ((cert or self.cert, '.pem', 0o644), (key or self.key, '.key', 0o600)):
            dst = os.path.join(dest_dir, name + ext)
            shutil.copyfile(src, dst + '.tmp')
            self._readable(dst + '.tmp', mode)
            os.rename(dst + '.tmp', dst)
            out.append(dst)
        return tuple(out)

    def client_context(self):
        """An ssl.SSLContext of a careful client: it verifies the chain up to
        this CA and the host name (127.0.0.1 is in the certificate)."""
        import ssl
        return ssl.create_default_context(cafile=self.ca_cert)

    def tls_section(self, **extra):
        """The keys of a [tls] section with the server's pair."""
        keys = {'certificate': self.cert, 'key': self.key}
        keys.update(extra)
        return keys


_shared_ca = None


def shared_ca():
    """The TestCA of this test process, made on first use."""
    global _shared_ca
    if _shared_ca is None:
        _shared_ca = TestCA()
    return _shared_ca


def tls_wrap(sock, context, server_hostname='127.0.0.1'):
    """The TLS client handshake over a connected socket; returns the SSLSocket."""
    return context.wrap_socket(sock, server_hostname=server_hostname)


def peer_fingerprint(sslsock):
    """SHA-256 (hex) of the certificate the server presented."""
    return der_fingerprint(sslsock.getpeercert(binary_form=True))


class TLSTestCase(BuzonTestCase):
    """Servers with TLS: [tls] holds the test CA's server pair; by default
    the six listeners of TLS_LISTENERS (SMTP, IMAP, POP3, each with
    STARTTLS and implicit TLS)."""

    def setUp(self):
        super().setUp()
        self.ca = shared_ca()
        self.ctx = self.ca.client_context()

    def tls_server(self, listeners=None, tls=None, start=True, **kw):
        """A server with [tls] (plus the keys of tls) and alice only (each
        user costs a password hash)."""
        keys = self.ca.tls_section()
        keys.update(tls or {})
        kw.setdefault('users', ('alice',))
        return self.new_server(start=start, listeners=listeners or TLS_LISTENERS, tls=keys, **kw)

    def wait_log(self, s, regex, timeout=10, start=0):
        """Waits until a log line of s (from line index start) matches regex;
        returns it (AssertionError after timeout seconds)."""
        deadline = time.monotonic() + scaled(timeout)
        with s.log_lock:
            while True:
                for l in s.log_lines[start:]:
                    if re.search(regex, l):
                        return l
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError('no log line matching %r after %ss:\n%s' %
                                         (regex, timeout, '\n'.join(s.log_lines[-30:])))
                s.log_lock.wait(min(left, 0.2))

    def log_mark(self, s):
        with s.log_lock:
            return len(s.log_lines)
