"""TLS robustness (issue 9): garbage and HTTP on an implicit-TLS port,
stalled handshakes cut at [tls] handshake_timeout, a close_notify in the
middle of DATA or of an APPEND literal followed by clear-text bytes, and
certificates re-read on SIGHUP while a TLS IDLE session stays open.

After each abuse the server must still run and serve the next client.
"""

import random
import signal
import smtplib
import socket
import ssl
import threading
import time
import unittest

from buzon_test import (ALICE, PASSWORD, RawIMAP, RawPOP3, RawSMTP, TLSTestCase, after_tag, make_message,
                        pem_fingerprint, peer_fingerprint, scaled)

SENDER = 'sender@client.example.org'


class BioTLS:
    """A TLS client over a raw socket through memory BIOs: we decide when
    every TLS record leaves (a close_notify alone, clear text after it)."""

    def __init__(self, sock, context, server_hostname='127.0.0.1'):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.inc, self.out, server_hostname=server_hostname)
        self.plain = b''

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pull(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError('closed by the server; pending %r' % self.plain[-200:])
        self.inc.write(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._pull()

    def send(self, data):
        self.obj.write(data)
        self._flush()

    def line(self):
        while b'\r\n' not in self.plain:
            try:
                self.plain += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._pull()
        line, self.plain = self.plain.split(b'\r\n', 1)
        return line

    def close_notify(self):
        """Sends our close_notify (and nothing else)."""
        try:
            self.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        self._flush()

    def closed_within(self, seconds):
        """True when the server closes the TCP connection within seconds
        (what it sends meanwhile, TLS alerts included, is read and dropped)."""
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def client_hello(context):
    """The bytes of a ClientHello this context would send."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(inc, out, server_hostname='127.0.0.1')
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class Garbage(TLSTestCase):

    def assertServes(self, s):
        c = RawIMAP(s.addr('imaps'), tls=self.ctx)
        self.addCleanup(c.close)
        c.login()
        c.ok('NOOP')
        d = RawPOP3(s.addr('pops'), tls=self.ctx)
        self.addCleanup(d.close)
        self.assertTrue(d.login().startswith(b'+OK'))

    def closes(self, s, listener, data, seconds=3):
        sock = socket.create_connection(s.addr(listener), timeout=scaled(10))
        self.addCleanup(sock.close)
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return
        sock.settimeout(scaled(seconds))
        got = b''
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            self.fail('%s: the server did not close within %ss after %r (sent back %r)'
                      % (listener, seconds, data[:40], got[:100]))
        # whatever came back is TLS (an alert) or nothing: never a clear-text greeting
        self.assertTrue(got == b'' or got[:1] == b'\x15', '%s answered %r' % (listener, got[:100]))

    def test_random_bytes_on_implicit_ports(self):
        # handshake_timeout well above the wait: the close comes from the
        # bad bytes, not from the timer
        s = self.tls_server(tls={'handshake_timeout': '20s'})
        rnd = random.Random(9)
        for listener in ('imaps', 'pops', 'smtps'):
            # from 5 octets on (a record header) the server can tell; the
            # first is no TLS content type (20-23) and has its high bit
            # clear (else it may be the length of an SSLv2-style hello,
            # which a server may wait for until handshake_timeout)
            for n in (5, 7, 600, 20000):
                data = bytes([rnd.randrange(0x18, 0x80)]) + rnd.randbytes(n - 1)
                self.closes(s, listener, data)
        # a whole handshake record holding a ClientHello of garbage
        self.closes(s, 'imaps', b'\x16\x03\x01\x00\x40\x01\x00\x00\x3c' + rnd.randbytes(0x3c))
        self.closes(s, 'imaps', b'\x16\x03\x03\x00\x05\x01\x00\x00\x01\xff' + rnd.randbytes(100))
        self.assertServes(s)

    def test_http_request_on_implicit_ports(self):
        s = self.tls_server(tls={'handshake_timeout': '20s'})
        for listener in ('imaps', 'pops', 'smtps'):
            self.closes(s, listener, b'GET / HTTP/1.1\r\nHost: mx.example.test\r\nUser-Agent: test\r\n\r\n')
            self.closes(s, listener, b'a LOGIN alice secret\r\n')
        self.assertServes(s)

    def test_clear_text_client_on_implicit_port(self):
        s = self.tls_server(tls={'handshake_timeout': '2s'})
        # a clear-text client waits for a greeting that never comes in clear
        sock = socket.create_connection(s.addr('smtps'), timeout=scaled(10))
        self.addCleanup(sock.close)
        sock.settimeout(1.0)
        try:
            got = sock.recv(100)
        except socket.timeout:
            got = None
        self.assertIn(got, (None, b''), 'no clear-text greeting on an implicit port: %r' % got)
        self.assertServes(s)


class StalledHandshake(TLSTestCase):

    def test_stalled_handshakes_cut_at_timeout(self):
        s = self.tls_server(tls={'handshake_timeout': '2s'})
        hello = client_hello(self.ctx)
        self.assertGreater(len(hello), 10)
        results = {}

        def watch(name, sock, started):
            sock.settimeout(scaled(15))
            try:
                while sock.recv(65536):
                    pass
                results[name] = time.monotonic() - started
            except (ConnectionResetError, BrokenPipeError):
                results[name] = time.monotonic() - started
            except (socket.timeout, OSError) as e:
                results[name] = e

        cases = []

        def implicit_nothing():
            sock = socket.create_connection(s.addr('imaps'), timeout=scaled(10))
            return sock

        def implicit_half_hello():
            sock = socket.create_connection(s.addr('pops'), timeout=scaled(10))
            sock.sendall(hello[:len(hello) // 2])
            return sock

        def starttls_nothing():
            c = RawSMTP(s.addr('mx'))
            c.ehlo()
            r = c.cmd('STARTTLS')
            assert r.code == 220, r
            return c.sock

        def starttls_half_hello():
            c = RawIMAP(s.addr('imap'))
            _, tagged = c.cmd('STARTTLS')
            assert tagged.startswith('OK'), tagged
            c.sock.sendall(hello[:5])
            return c.sock

        threads = []
        for name, make in (('implicit, nothing sent', implicit_nothing),
                           ('implicit, half a ClientHello', implicit_half_hello),
                           ('SMTP STARTTLS, nothing sent', starttls_nothing),
                           ('IMAP STARTTLS, a record header', starttls_half_hello)):
            started = time.monotonic()
            sock = make()
            self.addCleanup(sock.close)
            t = threading.Thread(target=watch, args=(name, sock, started), daemon=True)
            t.start()
            threads.append(t)
        # meanwhile a good client is served at once
        t0 = time.monotonic()
        c = RawIMAP(s.addr('imaps'), tls=self.ctx)
        self.addCleanup(c.close)
        c.login()
        self.assertLess(time.monotonic() - t0, 1.5, 'a good client waits behind stalled handshakes')
        for t in threads:
            t.join(scaled(20))
        for name, took in sorted(results.items()):
            self.assertIsInstance(took, float, '%s: not closed (%r)' % (name, took))
            self.assertGreaterEqual(took, 1.9, '%s: closed before handshake_timeout (%.2fs)' % (name, took))
            self.assertLess(took, scaled(5), '%s: closed only after %.2fs (handshake_timeout = 2s)' % (name, took))
        self.assertEqual(len(results), 4, results)


class CloseNotify(TLSTestCase):
    """A close_notify ends TLS; clear-text bytes after it must never be
    read as protocol input."""

    def test_close_notify_in_data(self):
        s = self.tls_server()
        sock = socket.create_connection(s.addr('smtps'), timeout=scaled(10))
        self.addCleanup(sock.close)
        t = BioTLS(sock, self.ctx)
        t.handshake()
        self.assertTrue(t.line().startswith(b'220 '))
        for cmd, code in ((b'EHLO client.example.org', b'250 '), (b'MAIL FROM:<%s>' % SENDER.encode(), b'250 '),
                          (b'RCPT TO:<%s>' % ALICE.encode(), b'250 '), (b'DATA', b'354 ')):
            t.send(cmd + b'\r\n')
            while True:
                l = t.line()
                if l[:4] == code or not l[3:4] == b'-':
                    break
            self.assertEqual(l[:4], code, (cmd, l))
        msg = make_message('cut by close_notify')
        t.send(msg[:len(msg) // 2])
        t.close_notify()
        # the rest in clear text on the same socket, with the end of data
        sock.sendall(msg[len(msg) // 2:] + b'.\r\nQUIT\r\n')
        self.assertTrue(t.closed_within(scaled(5)), 'the server must close after close_notify')
        time.sleep(0.3)
        self.assertNoMail(s, 'a message cut by close_notify must not be delivered')
        # the server goes on
        host, port = s.addr('smtps')
        with smtplib.SMTP_SSL(host, port, context=self.ctx, timeout=scaled(20)) as c:
            self.assertEqual(c.sendmail(SENDER, [ALICE], make_message('next')), {})
        self.assertEqual(len(s.messages(ALICE)), 1)

    def test_close_notify_in_starttls_data(self):
        s = self.tls_server()
        c = RawSMTP(s.addr('mx'))
        self.addCleanup(c.close)
        c.ehlo()
        self.assertReply(c.cmd('STARTTLS'), 220)
        t = BioTLS(c.sock, self.ctx)
        t.handshake()
        for cmd in (b'EHLO client.example.org', b'MAIL FROM:<%s>' % SENDER.encode(), b'RCPT TO:<%s>' % ALICE.encode(),
                    b'DATA'):
            t.send(cmd + b'\r\n')
            while True:
                l = t.line()
                if l[3:4] != b'-':
                    break
            self.assertIn(l[:3], (b'250', b'354'), (cmd, l))
        t.send(b'Subject: half\r\n\r\nfirst line\r\n')
        t.close_notify()
        c.sock.sendall(b'second line in clear\r\n.\r\nMAIL FROM:<x@y.example>\r\n')
        self.assertTrue(t.closed_within(scaled(5)), 'the server must close after close_notify')
        time.sleep(0.3)
        self.assertNoMail(s)

    def test_close_notify_in_append_literal(self):
        s = self.tls_server()
        sock = socket.create_connection(s.addr('imaps'), timeout=scaled(10))
        self.addCleanup(sock.close)
        t = BioTLS(sock, self.ctx)
        t.handshake()
        self.assertTrue(t.line().startswith(b'* OK'))
        t.send(b'a LOGIN "%s" "%s"\r\n' % (ALICE.encode(), PASSWORD.encode()))
        while not t.line().startswith(b'a '):
            pass
        msg = make_message('append cut by close_notify')
        t.send(b'b APPEND INBOX {%d}\r\n' % len(msg))
        self.assertTrue(t.line().startswith(b'+'))
        t.send(msg[:len(msg) // 2])
        t.close_notify()
        sock.sendall(msg[len(msg) // 2:] + b'\r\nc NOOP\r\n')
        self.assertTrue(t.closed_within(scaled(5)), 'the server must close after close_notify')
        time.sleep(0.3)
        c = RawIMAP(s.addr('imaps'), tls=self.ctx)
        self.addCleanup(c.close)
        c.login()
        untagged, _ = c.ok('STATUS INBOX (MESSAGES)')
        self.assertIn('(MESSAGES 0)', untagged[0], 'a cut APPEND must append nothing')
        self.assertEqual([f for f in s.all_mail_files(('new', 'cur'))], [])


class Reload(TLSTestCase):

    def fingerprint_of_new_connection(self, s, listener='imaps'):
        sock = socket.create_connection(s.addr(listener), timeout=scaled(10))
        with self.ctx.wrap_socket(sock, server_hostname='127.0.0.1') as t:
            return peer_fingerprint(t)

    def test_sighup_reloads_certificate_idle_session_survives(self):
        cert, key = self.ca.copy_pair(self.new_dir())
        s = self.tls_server(tls={'certificate': cert, 'key': key})
        old = pem_fingerprint(cert)
        self.assertEqual(self.fingerprint_of_new_connection(s), old)
        # an IDLE session over implicit TLS, and one over STARTTLS
        idlers = []
        i1 = RawIMAP(s.addr('imaps'), tls=self.ctx)
        i2 = RawIMAP(s.addr('imap'))
        _, tagged = i2.cmd('STARTTLS')
        self.assertRegex(tagged, r'^OK\b')
        i2.start_tls(self.ctx)
        for c in (i1, i2):
            self.addCleanup(c.close)
            c.login()
            c.ok('SELECT INBOX')
            c.send(b'i IDLE\r\n')
            self.assertTrue(c.line().startswith(b'+'))
            idlers.append(c)
        # new pair in place (renamed over the old files), then SIGHUP
        new_cert, new_key = self.ca.issue('reloaded')
        self.ca.copy_pair(self.dir_of(cert), new_cert, new_key)
        new = pem_fingerprint(new_cert)
        self.assertNotEqual(new, old)
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + scaled(5)
        got = old
        while time.monotonic() < deadline:
            got = self.fingerprint_of_new_connection(s)
            if got == new:
                break
            time.sleep(0.1)
        self.assertEqual(got, new, 'a new handshake after SIGHUP must present the new certificate')
        # also on the STARTTLS listeners
        host, port = s.addr('mx')
        with smtplib.SMTP(host, port, timeout=scaled(20)) as c:
            c.starttls(context=self.ctx)
            self.assertEqual(peer_fingerprint(c.sock), new)
            self.assertEqual(c.sendmail(SENDER, [ALICE], make_message('after reload')), {})
        # the IDLE sessions, with their old TLS sessions, hear the delivery
        for c in idlers:
            c.settimeout(scaled(5))
            self.assertEqual(self.next_exists(c), b'* 1 EXISTS')
            self.assertEqual(peer_fingerprint(c.sock), old)
        # a bad new file: logged, the certificate in use kept
        mark = self.log_mark(s)
        with open(cert, 'w') as f:
            f.write('-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n')
        s.proc.send_signal(signal.SIGHUP)
        line = self.wait_log(s, r'level=(error|warn)\b.*certificate.*server\.pem', start=mark)
        time.sleep(0.3)
        self.assertIsNone(s.proc.poll(), 'the server must keep running')
        self.assertEqual(self.fingerprint_of_new_connection(s), new, 'the old certificate stays: ' + line)
        # the IDLE sessions are still there and still hear deliveries
        host, port = s.addr('smtps')
        with smtplib.SMTP_SSL(host, port, context=self.ctx, timeout=scaled(20)) as c:
            self.assertEqual(c.sendmail(SENDER, [ALICE], make_message('after bad reload')), {})
        for c in idlers:
            self.assertEqual(self.next_exists(c), b'* 2 EXISTS')
            c.send(b'DONE\r\n')
            _, tagged = c.until_tagged('i')
            self.assertRegex(after_tag(tagged), r'^OK\b')
        # a key that does not match the certificate: kept the old pair too
        other_cert, _ = self.ca.issue('mismatch')
        self.ca.copy_pair(self.dir_of(cert), other_cert, new_key)
        mark = self.log_mark(s)
        s.proc.send_signal(signal.SIGHUP)
        self.wait_log(s, r'level=(error|warn)\b.*server\.key.*match', start=mark)
        time.sleep(0.3)
        self.assertEqual(self.fingerprint_of_new_connection(s), new)

    @staticmethod
    def next_exists(c):
        """The next "* n EXISTS" line (RECENT and others skipped)."""
        while True:
            l = c.line()
            if l.endswith(b' EXISTS'):
                return l

    def new_dir(self):
        import os
        import tempfile
        d = tempfile.mkdtemp(prefix='buzon-tls-', dir=self.ca.dir)
        os.chmod(d, 0o711)
        return d

    @staticmethod
    def dir_of(path):
        import os
        return os.path.dirname(path)


if __name__ == '__main__':
    unittest.main(verbosity=2)
