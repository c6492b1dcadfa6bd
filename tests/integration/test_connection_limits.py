"""Connection caps per listener, the share kept for logged-in users, and the
open files limit.

Issue 8: about 1,000 idle SMTP connections from 20 addresses locked IMAP
and POP3 users out (one cap for every protocol), and under `ulimit -n 1024`
900 IMAP LOGIN+SELECT sessions got `NO [SERVERBUG]` or were closed without
a word. Each listener now counts its own connections (in all and per client
address), POP3 and IMAP keep a share of theirs for sessions that have
logged in, and the server fits its caps into the descriptor limit at start
(lowering them loudly) and answers a newcomer it has no room for with the
protocol's busy reply.
"""

import os
import resource
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import buzon_test as bt  # noqa: E402

IMAP_BUSY = b'* BYE [UNAVAILABLE]'
POP3_BUSY = b'-ERR [SYS/TEMP]'


def raw_config(s, server='', listeners=''):
    text = ('[server]\nhostname = %s\ndata_dir = %s\nlog_level = info\n%s\n'
            % (bt.HOSTNAME, s.data_dir, server)) + listeners
    s.write_config(raw=text)


def first_line(addr, source=None, timeout=10):
    """Connects (from source) and returns (socket, the first line or b'')."""
    sock = socket.socket()
    sock.settimeout(bt.scaled(timeout))
    if source:
        sock.bind((source, 0))
    sock.connect(addr)
    buf = b''
    try:
        while b'\r\n' not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        pass
    return sock, buf.split(b'\r\n', 1)[0]


class ListenerCaps(bt.BuzonTestCase):

    LISTENERS = ('[listener "mx"]\nprotocol = smtp\naddress = 127.0.0.1:0\n'
                 'max_connections = 30\nmax_connections_per_ip = 3\n\n'
                 '[listener "imap"]\nprotocol = imap\naddress = 127.0.0.1:0\n'
                 'max_connections = 10\nmax_unauthenticated = 4\n\n'
                 '[listener "pop"]\nprotocol = pop3\naddress = 127.0.0.1:0\n'
                 'max_connections = 10\n')

    def server(self):
        s = self.new_server(start=False)
        raw_config(s, listeners=self.LISTENERS)
        s.start()
        return s

    def hold(self, socks):
        self.addCleanup(lambda: [x.close() for x in socks])

    def test_smtp_flood_leaves_readers_alone(self):
        s = self.server()
        socks, greetings = [], []
        # 20 addresses x 3 connections = 60 against a cap of 30
        for i in range(20):
            for _ in range(3):
                sock, line = first_line(s.addr('mx'), source='127.0.0.%d' % (i + 2))
                socks.append(sock)
                greetings.append(line[:3])
        self.hold(socks)
        self.assertEqual(greetings.count(b'220'), 30, greetings)
        self.assertEqual(greetings.count(b'421'), 30, greetings)
        # while the 30 sessions hold port 25's slots, users read their mail
        with s.connect_imap() as c:
            c.login()
            c.ok('SELECT INBOX')
        sock, line = first_line(s.addr('pop'))
        self.hold([sock])
        self.assertTrue(line.startswith(b'+OK'), line)
        sock.sendall(b'USER %s\r\nPASS %s\r\nSTAT\r\nQUIT\r\n' % (bt.ALICE.encode(), bt.PASSWORD.encode()))
        reply = b''
        while reply.count(b'\r\n') < 4:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        self.assertEqual([l[:3] for l in reply.split(b'\r\n')[:4]], [b'+OK'] * 4, reply)

    def test_per_address_cap_is_per_listener(self):
        s = self.server()
        socks = []
        lines = []
        for _ in range(4):
            sock, line = first_line(s.addr('mx'), source='127.0.0.9')
            socks.append(sock)
            lines.append(line[:3])
        self.hold(socks)
        self.assertEqual(lines, [b'220', b'220', b'220', b'421'])
        # the same address still reaches IMAP
        sock, line = first_line(s.addr('imap'), source='127.0.0.9')
        self.hold([sock])
        self.assertTrue(line.startswith(b'* OK'), line)

    def test_imap_keeps_slots_for_logged_in_users(self):
        s = self.server()
        anon = []
        for _ in range(4):
            c = s.connect_imap()
            self.hold([c])
            anon.append(c)
        # a fifth that has not logged in is one too many...
        sock, line = first_line(s.addr('imap'))
        self.hold([sock])
        self.assertTrue(line.startswith(IMAP_BUSY), line)
        s.stop()
        self.assertIn('refused=unauthenticated connection limit', s.log())
        s.start()
        anon = []
        for _ in range(4):
            c = s.connect_imap()
            self.hold([c])
            anon.append(c)
        # ...but once one logs in, its place in the unauthenticated share is free
        anon[0].login()
        users = [anon[0]]
        for _ in range(6):
            c = s.connect_imap()
            self.hold([c])
            c.login()
            users.append(c)
        # 7 logged in + 3 not = 10: the listener is full
        sock, line = first_line(s.addr('imap'))
        self.hold([sock])
        self.assertTrue(line.startswith(IMAP_BUSY), line)
        for c in users:
            c.ok('NOOP')

    def test_pop3_keeps_slots_for_logged_in_users(self):
        s = self.server()   # pop: max 10, so 5 not logged in at most
        socks = []
        for _ in range(5):
            sock, line = first_line(s.addr('pop'))
            socks.append(sock)
            self.assertTrue(line.startswith(b'+OK'), line)
        self.hold(socks)
        sock, line = first_line(s.addr('pop'))
        self.hold([sock])
        self.assertTrue(line.startswith(POP3_BUSY), line)


class FileDescriptorLimit(bt.BuzonTestCase):
    """Under `ulimit -n 1024` with the default caps: every IMAP client gets a
    session that works or the busy reply, never a server error or silence."""

    LIMIT = 1024
    CLIENTS = 900

    def test_900_imap_sessions_under_1024_descriptors(self):
        s = self.new_server(start=False, server={'max_connections_per_ip': 1000},
                            listeners={'imap': ('imap', '127.0.0.1:0')})
        s.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (self.LIMIT, self.LIMIT)))
        self.assertRegex(s.log(), r'max_connections lowered listener=imap from=1000 to=\d+ fd_limit=1024')
        conns, busy = [], 0
        self.addCleanup(lambda: [c.close() for c in conns])
        for i in range(self.CLIENTS):
            sock, line = first_line(s.addr('imap'), source='127.0.%d.%d' % (1 + i // 200, 2 + i % 200))
            if line.startswith(b'* OK'):
                conns.append(sock)
            elif line.startswith(IMAP_BUSY):
                busy += 1
                sock.close()
            else:
                sock.close()
                self.fail('client %d got %r (closed without the busy reply)' % (i, line))
        self.assertGreater(len(conns), 100)
        self.assertEqual(len(conns) + busy, self.CLIENTS)
        # every session logs in and opens its INBOX, all at once
        for sock in conns:
            sock.sendall(b'a LOGIN %s "%s"\r\nb SELECT INBOX\r\n' % (bt.ALICE.encode(), bt.PASSWORD.encode()))
        bad = []
        for sock in conns:
            sock.settimeout(bt.scaled(60))
            buf = b''
            while b'\r\nb ' not in b'\r\n' + buf:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
            while not buf.endswith(b'\r\n'):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
            tagged = [l for l in buf.split(b'\r\n') if l.startswith((b'a ', b'b '))]
            if [t[:4] for t in tagged] != [b'a OK', b'b OK']:
                bad.append(tagged or buf[-200:])
        errors = [l for l in s.log().splitlines() if 'level=error' in l or 'level=warn' in l]
        self.assertEqual(bad, [], '%d of %d sessions failed, e.g. %r; log: %s' %
                         (len(bad), len(conns), bad[:3], '\n'.join(errors[:10])))
        self.assertNotIn('SERVERBUG', s.log())
        self.assertNotRegex(s.log(), r'Too many open files')


if __name__ == '__main__':
    unittest.main()
