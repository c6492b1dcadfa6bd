"""Real clients: swaks and curl (smtplib is used throughout the other files)."""

import os
import subprocess
import unittest

from buzon_test import BuzonTestCase, make_message, scaled, subprocess_env

ALICE = 'alice@example.test'
BOB = 'bob@example.test'
SENDER = 'sender@client.example.org'

BODY = (b'Hello from a real client.\r\n'
        b'.a line with a leading dot\r\n'
        b'..and two\r\n'
        b'\r\n'
        b'-- \r\n'
        b'signature\r\n')


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, timeout=scaled(30), env=subprocess_env(), **kw)


class Swaks(BuzonTestCase):

    def swaks(self, s, msg, *extra, to=ALICE):
        path = os.path.join(s.tmp, 'msg.eml')
        # swaks turns LF into CRLF, dot-stuffs, and adds one CRLF before
        # the final dot: the file is the message without its last line end.
        assert msg.endswith(b'\r\n')
        with open(path, 'wb') as f:
            f.write(msg[:-2].replace(b'\r\n', b'\n'))
        host, port = s.addr()
        p = run(['swaks', '--server', host, '--port', str(port), '--from', SENDER, '--to', to,
                 '--helo', 'client.example.org', '--data', '@' + path,
                 '--timeout', '20'] + list(extra))
        return p

    def test_swaks_esmtp(self):
        s = self.new_server()
        msg = make_message('swaks', BODY)
        p = self.swaks(s, msg)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertDelivered(s, got[0], msg, SENDER, ALICE, proto='ESMTP')

    def test_swaks_pipelining(self):
        s = self.new_server()
        msg = make_message('swaks pipelining', BODY)
        p = self.swaks(s, msg, '--pipeline', to=ALICE + ',' + BOB)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertNotIn(b'does not support PIPELINING', p.stdout + p.stderr)
        for u in (ALICE, BOB):
            got = s.messages(u)
            self.assertEqual(len(got), 1)
            self.assertDelivered(s, got[0], msg, SENDER, u)

    def test_swaks_helo(self):
        s = self.new_server()
        msg = make_message('swaks helo', BODY)
        p = self.swaks(s, msg, '--protocol', 'SMTP')
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertDelivered(s, got[0], msg, SENDER, ALICE, proto='SMTP')

    def test_swaks_unknown_user(self):
        s = self.new_server()
        p = self.swaks(s, make_message('nobody', BODY), to='nobody@example.test')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b'550 5.1.1', p.stdout)
        self.assertNoMail(s)


class Curl(BuzonTestCase):

    def curl(self, s, msg, rcpts):
        path = os.path.join(s.tmp, 'msg.eml')
        with open(path, 'wb') as f:
            f.write(msg)
        host, port = s.addr()
        argv = ['curl', '--silent', '--show-error', '--max-time', '20',
                'smtp://%s:%d/client.example.org' % (host, port),
                '--mail-from', SENDER, '--upload-file', path]
        for r in rcpts:
            argv += ['--mail-rcpt', r]
        return run(argv)

    def test_curl_upload(self):
        s = self.new_server()
        msg = make_message('curl', BODY)
        p = self.curl(s, msg, [ALICE, BOB])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        for u in (ALICE, BOB):
            got = s.messages(u)
            self.assertEqual(len(got), 1)
            self.assertDelivered(s, got[0], msg, SENDER, u)

    def test_curl_large(self):
        s = self.new_server()
        msg = make_message('curl large', (b'0123456789' * 7 + b'\r\n') * 20000)  # ~1.4 MB
        p = self.curl(s, msg, [ALICE])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        got = s.messages(ALICE)
        self.assertEqual(len(got), 1)
        self.assertDelivered(s, got[0], msg, SENDER, ALICE)

    def test_curl_refused_recipient(self):
        s = self.new_server()
        p = self.curl(s, make_message('curl nobody', BODY), ['nobody@example.test'])
        self.assertNotEqual(p.returncode, 0)
        self.assertNoMail(s)

    def test_curl_oversize(self):
        s = self.new_server(smtp={'max_message_size': '10k'})
        p = self.curl(s, make_message('curl big', b'x' * 70 + b'\r\n' * 1 + (b'y' * 70 + b'\r\n') * 300), [ALICE])
        self.assertNotEqual(p.returncode, 0)
        self.assertNoMail(s)


if __name__ == '__main__':
    unittest.main(verbosity=2)
