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
    # Issue 8: what the documentation calls an error is one.
    ('second [server] section', LISTENER + ['', '[server]', 'hostname = evil.test'], 5),
    ('[smtp] twice', ['', '[smtp]', 'max_recipients = 10', '', '[smtp]', 'max_recipients = 20'] + LISTENER, 4),
    ('empty unknown section', LISTENER + ['[bogus]'], 4),
    ('NUL byte in a value', ['max_connections = 10\x00junk'] + LISTENER, 0),
    ('NUL byte in a comment', ['# a \x00 b'] + LISTENER, 0),
    ('control character', ['log_level = info\x1b[2J'] + LISTENER, 0),
    ('junk after a section header', ['', '[smtp] junk', 'max_recipients = 10'] + LISTENER, 1),
    ('unterminated section header', ['', '[smtp', 'max_recipients = 10'] + LISTENER, 1),
    ('key with odd characters', ['max:connections = 10'] + LISTENER, 0),
    ('value with trailing garbage', ['max_connections = 10 connections'] + LISTENER, 0),
    ('quoted value', ['log_level = "info"'] + LISTENER, 0),
    ('over-long line', ['# ' + 'x' * 300] + LISTENER, 0),
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

    def run_raw(self, s, data, *args):
        """Writes data (bytes) as the config file and runs buzon ARGS; stderr as bytes."""
        with open(s.config_path, 'wb') as f:
            f.write(data)
        return subprocess.run([s.bin, '--config', s.config_path] + list(args), capture_output=True,
                              env=subprocess_env(), timeout=scaled(15), stdin=subprocess.DEVNULL,
                              start_new_session=True)

    def test_second_server_section_cannot_change_the_greeting(self):
        """A second [server] used to override the first: hostname = evil.test
        changed the greeting. Now check and serve refuse the file, naming
        both lines."""
        s = Server()
        self.servers.append(s)
        s.write_config(raw='\n'.join(server_lines(s.data_dir) + LISTENER +
                                     ['', '[server]', 'hostname = evil.test']) + '\n')
        for cmd in ('check', 'serve'):
            p = self.run_buzon(s, cmd)
            self.assertFileLineError(p, s.config_path, (9,), cmd)
            self.assertIn('section [server] is given twice (first on line 1)', p.stderr)
            self.assertNotIn('ready', p.stderr)

    def test_error_lines_never_echo_raw_bytes(self):
        """Terminal escapes, invalid UTF-8 and long junk in a value come back
        escaped as \\xNN and cut, on one line of printable ASCII."""
        s = Server()
        self.servers.append(s)
        head = ('\n'.join(server_lines(s.data_dir)) + '\n').encode()
        for name, line, want in [
                ('escape sequence', b'hostname = a\x1b]0;pwned\x07\x1b[2J', rb'line contains the control character \x1b'),
                ('invalid UTF-8', b'hostname = \xff\xfe\xfd', rb'line is not valid UTF-8'),
                ('UTF-8 in a bad value', b'log_level = caf\xc3\xa9', rb"log_level 'caf\xc3\xa9' is not"),
                ('long junk', b'log_level = ' + b'\xc3\xa9' * 80, rb"log_level '" + rb'\xc3\xa9' * 32 + b"...'"),
                ('carriage return inside', b'log_level = info\rdebug', rb'control character \x0d'),
                ('a second line end style', b'log_level = info\r\r', rb'control character \x0d'),
        ]:
            with self.subTest(name):
                p = self.run_raw(s, head.replace(b'hostname = mx.example.test\n', b'') + line + b'\n' +
                                 '\n'.join(LISTENER).encode() + b'\n', 'check')
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertEqual(p.stderr.count(b'\n'), 1, p.stderr)
                self.assertTrue(all(0x20 <= b < 0x7f for b in p.stderr.rstrip(b'\n')), p.stderr)
                self.assertIn(b'%s:3: ' % s.config_path.encode(), p.stderr)
                self.assertIn(want, p.stderr)

    def test_nul_byte_is_an_error(self):
        """A NUL byte used to cut its line short in silence: data_dir =
        /safe<NUL>/etc became /safe."""
        s = Server()
        self.servers.append(s)
        text = '\n'.join(server_lines(s.data_dir + '\x00/etc') + LISTENER) + '\n'
        p = self.run_raw(s, text.encode(), 'check')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b'%s:3: line contains a NUL byte' % s.config_path.encode(), p.stderr)

    def test_windows_editor_file_is_accepted(self):
        """A UTF-8 byte order mark and CR LF line ends: accepted on purpose,
        and nothing of them ends up in a value."""
        s = Server()
        self.servers.append(s)
        text = '\r\n'.join(server_lines(s.data_dir) + LISTENER) + '\r\n'
        p = self.run_raw(s, b'\xef\xbb\xbf' + text.encode(), 'check')
        self.assertEqual(p.returncode, 0, p.stderr)
        s.setup_users(('alice',))
        s.start()
        with s.connect() as c:
            self.assertEqual(c.greeting.code, 220)
            self.assertTrue(c.greeting.lines[0].startswith('mx.example.test '), c.greeting)
            self.assertEqual(c.ehlo().lines[0].split()[0], 'mx.example.test')

    def test_relative_data_dir_is_the_config_files(self):
        """A relative data_dir is taken from the config file's directory, once:
        the CLI run from anywhere and the server agree on it."""
        s = Server()
        self.servers.append(s)
        s.write_config(raw='\n'.join(['[server]', 'hostname = mx.example.test', 'data_dir = ./data/../data']
                                     + LISTENER) + '\n')
        elsewhere = os.path.join(s.tmp, 'elsewhere')
        os.makedirs(elsewhere)
        for cwd in ('/', elsewhere):
            p = subprocess.run([s.bin, '--config', s.config_path, 'domain', 'add', 'd%d.example' % len(cwd)],
                               capture_output=True, text=True, env=subprocess_env(), timeout=scaled(30),
                               cwd=cwd, stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.isfile(os.path.join(s.data_dir, 'buzon.db')))
        self.assertFalse(os.path.exists(os.path.join(elsewhere, 'data')))
        p = subprocess.run([s.bin, '--config', s.config_path, 'domain', 'list'], capture_output=True, text=True,
                           env=subprocess_env(), timeout=scaled(30), cwd=elsewhere, stdin=subprocess.DEVNULL)
        self.assertEqual(sorted(p.stdout.split()), ['d1.example', 'd%d.example' % len(elsewhere)])
        p = self.run_buzon(s, 'check')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(s.data_dir, p.stdout)

    def test_data_dir_that_cannot_be_one(self):
        s = Server()
        self.servers.append(s)
        afile = os.path.join(s.tmp, 'a-file')
        with open(afile, 'w') as f:
            f.write('x')
        for name, data_dir in [('a regular file', '/etc/passwd'), ('under a regular file', afile + '/data')]:
            with self.subTest(name):
                s.write_config(raw='\n'.join(server_lines(data_dir) + LISTENER) + '\n')
                p = self.run_buzon(s, 'check')
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn('not a directory', p.stderr)
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)

    def test_bad_hostname(self):
        s = Server()
        self.servers.append(s)
        s.write_config(raw='\n'.join(['[server]', 'data_dir = ' + s.data_dir, 'hostname = bad host!'] + LISTENER)
                       + '\n')
        p = self.run_buzon(s, 'check')
        self.assertFileLineError(p, s.config_path, (3,), 'bad hostname')
        self.assertIn("hostname 'bad host!' is not a domain name", p.stderr)

    def test_check_takes_no_arguments(self):
        s = Server()
        self.servers.append(s)
        s.write_config()
        p = self.run_buzon(s, 'check', 'extra')
        self.assertNotEqual(p.returncode, 0, 'check ignored its extra argument')
        self.assertIn('extra', p.stderr)

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
            # check tries what serve needs, binding included (issue 8).
            p = self.run_buzon(s, 'check')
            self.assertFileLineError(p, s.config_path, (11,), 'check of a busy port')
            self.assertRegex(p.stderr, r'(?i)in use', p.stderr)
            p = self.run_buzon(s, 'serve', timeout=20)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn('%s:11' % s.config_path, p.stderr, 'the error names the address line')
            self.assertRegex(p.stderr, r'(?i)in use', p.stderr)
            self.assertNotRegex(p.stderr, r'comp=server ready')
        finally:
            busy.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
