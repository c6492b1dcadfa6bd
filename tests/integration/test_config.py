"""Configuration: the minimal config of the issue, a full config, every kind
of error reported by `check` (and `serve`) as FILE:LINE: reason, bind failure."""

import os
import re
import smtplib
import socket
import subprocess
import unittest

from buzon_test import BuzonTestCase, Server, make_message, body_of, stored_form, scaled, subprocess_env


def server_lines(data_dir):
    return ['[server]', 'hostname = mx.example.test', 'data_dir = ' + data_dir]


LISTENER = ['', '[listener "mx"]', 'protocol = smtp', 'address = 127.0.0.1:0']

# (name, lines after [server], index in that list of the bad line or a tuple
# of acceptable indexes). The [server] section is lines 1-3.
BAD = [
    ('unknown section', ['', '[bogus]', 'key = 1'] + LISTENER, (1, 2)),
    ('unknown section like a typo', ['', '[smpt]', 'max_recipients = 10'] + LISTENER, (1, 2)),
    ('unknown server key', ['hostnam = x'] + LISTENER, 0),
    ('unknown smtp key', ['', '[smtp]', 'max_mesage_size = 10M'] + LISTENER, 2),
    ('unknown listener key', ['', '[listener "mx"]', 'protocol = smtp', 'adress = 127.0.0.1:0'], 3),
    ('bad size', ['', '[smtp]', 'max_message_size = 10X'] + LISTENER, 2),
    ('negative number', ['', '[smtp]', 'max_recipients = -1'] + LISTENER, 2),
    ('not a number', ['max_connections = many'] + LISTENER, 0),
    ('zero connections', ['max_connections = 0'] + LISTENER, 0),
    ('bad duration', ['', '[smtp]', 'command_timeout = 5x'] + LISTENER, 2),
    ('bad shutdown_timeout', ['shutdown_timeout = forever'] + LISTENER, 0),
    ('bad bare_newline', ['', '[smtp]', 'bare_newline = maybe'] + LISTENER, 2),
    ('bad log_level', ['log_level = loud'] + LISTENER, 0),
    ('bad hostname', ['', '[listener "mx"]', 'protocol = smtp', 'address = 127.0.0.1:0', '',
                      '[server]', 'hostname = bad host!'], 6),
    ('bad protocol', ['', '[listener "mx"]', 'protocol = gopher', 'address = 127.0.0.1:0'], 2),
    ('address without port', ['', '[listener "mx"]', 'protocol = smtp', 'address = 127.0.0.1'], 3),
    ('port out of range', ['', '[listener "mx"]', 'protocol = smtp', 'address = 127.0.0.1:99999'], 3),
    ('host name as address', ['', '[listener "mx"]', 'protocol = smtp', 'address = mail.example.com:25'], 3),
    ('bad IPv4', ['', '[listener "mx"]', 'protocol = smtp', 'address = 300.1.2.3:25'], 3),
    ('IPv6 without brackets', ['', '[listener "mx"]', 'protocol = smtp', 'address = ::1:25'], 3),
    ('IPv6 bad brackets', ['', '[listener "mx"]', 'protocol = smtp', 'address = [::1]25'], 3),
    ('one bad address of two', ['', '[listener "mx"]', 'protocol = smtp',
                                'address = 127.0.0.1:0 127.0.0.1:x'], 3),
    ('same address twice', ['', '[listener "mx"]', 'protocol = smtp', 'address = 127.0.0.1:2525',
                            '', '[listener "other"]', 'protocol = smtp', 'address = 127.0.0.1:2525'], 7),
    ('duplicate key', ['', '[smtp]', 'max_recipients = 10', 'max_recipients = 20'] + LISTENER, 3),
    ('not key = value', ['', '[smtp]', 'this is not ini'] + LISTENER, 2),
    ('bad listener header', ['', '[listener mx]', 'protocol = smtp', 'address = 127.0.0.1:0'], (1, 2)),
]


class Config(BuzonTestCase):

    def run_buzon(self, s, *args, timeout=15):
        return subprocess.run([s.bin, '--config', s.config_path] + list(args), capture_output=True,
                              text=True, env=subprocess_env(), timeout=scaled(timeout),
                              stdin=subprocess.DEVNULL, start_new_session=True)

    def assertFileLineError(self, p, path, lines, what):
        self.assertEqual(p.returncode, 1, '%s: exit %d, stderr %r' % (what, p.returncode, p.stderr))
        err = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(err), 1, '%s: want one line on stderr, got %r' % (what, p.stderr))
        m = re.match(r'^(?:buzon: )?(.*?):(\d+): (\S.*)$', err[0])
        self.assertIsNotNone(m, '%s: not FILE:LINE: reason: %r' % (what, err[0]))
        self.assertEqual(m.group(1), path, what)
        self.assertIn(int(m.group(2)), lines, '%s: %r names the wrong line (want %r)' % (what, err[0], lines))

    def test_minimal_config_from_issue(self):
        s = Server()
        self.servers.append(s)
        s.write_config(raw='[server]\n'
                           'hostname = mx.example.test\n'
                           'data_dir = %s\n'
                           '\n'
                           '[listener "mx"]\n'
                           'protocol = smtp\n'
                           'address = 127.0.0.1:0\n' % s.data_dir)
        p = self.run_buzon(s, 'check')
        self.assertEqual(p.returncode, 0, p.stderr)
        s.setup_users(('alice',))
        s.start()
        msg = make_message('minimal')
        with smtplib.SMTP(*s.addr('mx'), timeout=scaled(10)) as cl:
            self.assertEqual(cl.sendmail('a@client.example.org', ['alice@example.test'], msg), {})
        got = s.messages('alice@example.test')
        self.assertEqual(len(got), 1)
        self.assertEqual(body_of(got[0]), stored_form(msg))

    def test_full_config(self):
        s = self.new_server(start=False,
                            server={'log_level': 'debug', 'max_connections': 10,
                                    'max_connections_per_ip': 5, 'shutdown_timeout': '5s'},
                            smtp={'max_message_size': '10M', 'max_recipients': 50,
                                  'bare_newline': 'reject', 'recipient_delimiter': '+',
                                  'command_timeout': '5m', 'data_timeout': '120',
                                  'max_bad_commands': 5})
        p = self.run_buzon(s, 'check')
        self.assertEqual(p.returncode, 0, p.stderr)
        s.start()
        with s.connect() as c:
            r = c.ehlo()
            self.assertIn('SIZE 10485760', r.lines)

    def test_config_errors(self):
        s = Server()
        self.servers.append(s)
        for name, rest, bad in BAD:
            with self.subTest(name):
                lines = server_lines(s.data_dir) + rest
                s.write_config(raw='\n'.join(lines) + '\n')
                want = bad if isinstance(bad, tuple) else (bad,)
                want = tuple(3 + i + 1 for i in want)
                p = self.run_buzon(s, 'check')
                self.assertFileLineError(p, s.config_path, want, 'check: ' + name)

    def test_serve_refuses_bad_config(self):
        s = Server()
        self.servers.append(s)
        for name, rest, bad in BAD[:6]:
            with self.subTest(name):
                s.write_config(raw='\n'.join(server_lines(s.data_dir) + rest) + '\n')
                want = bad if isinstance(bad, tuple) else (bad,)
                p = self.run_buzon(s, 'serve')
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertTrue(any('%s:%d:' % (s.config_path, 3 + i + 1) in p.stderr for i in want),
                                '%s: %r' % (name, p.stderr))
                self.assertNotIn('ready', p.stderr)

    def test_missing_required(self):
        s = Server()
        self.servers.append(s)
        for name, text in [
                ('no hostname', '[server]\ndata_dir = /tmp/x\n\n[listener "mx"]\nprotocol = smtp\naddress = 127.0.0.1:0\n'),
                ('no data_dir', '[server]\nhostname = a.example\n\n[listener "mx"]\nprotocol = smtp\naddress = 127.0.0.1:0\n'),
                ('no listener', '[server]\nhostname = a.example\ndata_dir = /tmp/x\n'),
                ('listener without protocol', '[server]\nhostname = a.example\ndata_dir = /tmp/x\n[listener "mx"]\naddress = 127.0.0.1:0\n'),
                ('listener without address', '[server]\nhostname = a.example\ndata_dir = /tmp/x\n[listener "mx"]\nprotocol = smtp\n'),
                ('empty file', ''),
        ]:
            with self.subTest(name):
                s.write_config(raw=text)
                p = self.run_buzon(s, 'check')
                self.assertEqual(p.returncode, 1, '%s: %r' % (name, p.stderr))
                err = [l for l in p.stderr.splitlines() if l.strip()]
                self.assertEqual(len(err), 1, p.stderr)
                self.assertRegex(err[0], r'^(buzon: )?%s:' % re.escape(s.config_path))

    def test_missing_config_file(self):
        s = Server()
        self.servers.append(s)
        p = subprocess.run([s.bin, '--config', os.path.join(s.tmp, 'nope.ini'), 'check'],
                           capture_output=True, text=True, env=subprocess_env(), timeout=scaled(15))
        self.assertEqual(p.returncode, 1)
        self.assertIn('nope.ini', p.stderr)

    def test_bind_failure(self):
        s = Server()
        self.servers.append(s)
        os.makedirs(s.data_dir)
        busy = socket.socket()
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            s.write_config(raw='\n'.join(server_lines(s.data_dir) + [
                '', '[listener "ok"]', 'protocol = smtp', 'address = 127.0.0.1:0',
                '', '[listener "mx"]', 'protocol = smtp', 'address = 127.0.0.1:%d' % port]) + '\n')
            p = self.run_buzon(s, 'check')
            self.assertEqual(p.returncode, 0, 'check validates; it does not bind: %r' % p.stderr)
            p = self.run_buzon(s, 'serve', timeout=20)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn('%s:11' % s.config_path, p.stderr, 'the error names the address line')
            self.assertRegex(p.stderr, r'(?i)in use', p.stderr)
            self.assertNotRegex(p.stderr, r'comp=server ready')
        finally:
            busy.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
