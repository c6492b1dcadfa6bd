"""buzon as a service: never root, data_dir its own, `check` before `serve`,
the demo, SIGHUP.

Started as root, buzon binds its ports, gives data_dir to the service user
([server] user, default `buzon`), becomes that user with no capability left,
and refuses to serve as root. The admin CLI run as root does the same before
it touches data_dir. These tests need root (CI runs as root): as another
user they are skipped with the reason.
"""

import grp
import os
import pwd
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import buzon_test as bt  # noqa: E402

ROOT = os.geteuid() == 0
SERVICE = 'buzon'


def service_ids():
    pw = pwd.getpwnam(SERVICE)
    return pw.pw_uid, pw.pw_gid


def proc_status(pid, tid=None):
    path = '/proc/%d/status' % pid if tid is None else '/proc/%d/task/%d/status' % (pid, tid)
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(':')
            out[k] = v.split()
    return out


def tree(root):
    """(path, lstat) of root and everything below it, symlinks not followed."""
    out = [(root, os.lstat(root))]
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out.append((p, os.lstat(p)))
    return out


def free_low_port():
    """A free TCP port below 1024 on 127.0.0.1 (root binds it here only to see)."""
    for port in range(1023, 900, -1):
        s = socket.socket()
        try:
            s.bind(('127.0.0.1', port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise unittest.SkipTest('no free port below 1024')


@unittest.skipUnless(ROOT, 'privilege tests need root (buzon drops privileges only when started as root)')
class PrivilegeTests(bt.BuzonTestCase):

    def test_serve_runs_as_service_user_without_capabilities(self):
        s = self.new_server(listeners=bt.IMAP_LISTENERS)
        uid, gid = service_ids()
        # One login so the worker threads exist too.
        with s.connect_imap() as c:
            c.login()
        tids = [int(t) for t in os.listdir('/proc/%d/task' % s.proc.pid)]
        self.assertGreater(len(tids), 1, 'the worker threads should have started')
        for tid in tids:
            st = proc_status(s.proc.pid, tid)
            self.assertEqual(st['Uid'], [str(uid)] * 4, 'thread %d uid: %r' % (tid, st['Uid']))
            self.assertEqual(st['Gid'], [str(gid)] * 4, 'thread %d gid: %r' % (tid, st['Gid']))
            self.assertEqual(st['Groups'], [str(gid)], 'thread %d groups: %r' % (tid, st['Groups']))
            for cap in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'):
                self.assertEqual(int(st[cap][0], 16), 0, 'thread %d %s=%s' % (tid, cap, st[cap][0]))
            self.assertEqual(st['NoNewPrivs'], ['1'])
        self.assertRegex(s.log(), r'running as user=%s uid=%d' % (SERVICE, uid))

    def test_everything_in_data_dir_is_the_service_users(self):
        # The CLI ran as root (new_server's setup_users) before serve.
        s = self.new_server(listeners=bt.IMAP_LISTENERS)
        uid, gid = service_ids()
        with s.connect() as c:
            r = c.send_message('x@example.org', [bt.ALICE], bt.make_message())
            self.assertReply(r, 250)
        with s.connect_imap() as c:
            c.login()
            c.ok('CREATE Projects')
            c.ok('SELECT INBOX')
            c.ok('APPEND Projects {5+}\r\nhello')
        s.stop()
        for path, st in tree(s.data_dir):
            self.assertEqual((st.st_uid, st.st_gid), (uid, gid), '%s is %d:%d' % (path, st.st_uid, st.st_gid))
            if stat.S_ISDIR(st.st_mode):
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o700, '%s mode %o' % (path, st.st_mode))
            else:
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, '%s mode %o' % (path, st.st_mode))

    def test_takes_over_files_restored_as_root(self):
        s = self.new_server(start=False, listeners=bt.IMAP_LISTENERS)
        s.start()
        s.stop()
        uid, gid = service_ids()
        alice = s.maildir(bt.ALICE)
        # A restore made as root: a new user directory and a message in it.
        restored = os.path.join(s.data_dir, 'mail', bt.DOMAIN, 'bob')
        os.chown(restored, 0, 0)
        msg = os.path.join(restored, 'cur', '1700000000.M1P1.restored,S=20:2,S')
        with open(msg, 'w') as f:
            f.write('Subject: old\n\nold mail\n')
        os.chown(msg, 0, 0)
        os.chown(os.path.join(s.data_dir, 'buzon.db'), 0, 0)
        s.start()
        for path in (restored, msg, os.path.join(s.data_dir, 'buzon.db')):
            st = os.lstat(path)
            self.assertEqual((st.st_uid, st.st_gid), (uid, gid), path)
        # and the restored message can be read
        with s.connect_imap() as c:
            c.login('bob@' + bt.DOMAIN)
            untagged, _ = c.ok('SELECT INBOX')
            self.assertIn('* 1 EXISTS', untagged)
        self.assertTrue(os.path.isdir(alice))

    def test_take_over_never_follows_a_symlink(self):
        s = self.new_server(start=False)
        outside = tempfile.mkdtemp(prefix='buzon-outside-')
        self.addCleanup(lambda: subprocess.run(['rm', '-rf', outside]))
        secret = os.path.join(outside, 'secret')
        with open(secret, 'w') as f:
            f.write('root only\n')
        os.chmod(secret, 0o600)
        # at the top of data_dir, and inside a directory the walk enters
        # because root owns it
        os.symlink(outside, os.path.join(s.data_dir, 'evil'))
        bob = s.maildir('bob@' + bt.DOMAIN)
        os.chown(bob, 0, 0)
        os.symlink(secret, os.path.join(bob, 'evil-file'))
        os.chown(s.data_dir, 0, 0)   # the whole tree is walked
        s.start()
        uid, gid = service_ids()
        for p in (outside, secret):
            st = os.stat(p)
            self.assertEqual((st.st_uid, st.st_gid), (0, 0), '%s was given away through a symlink' % p)
        for link in (os.path.join(s.data_dir, 'evil'), os.path.join(bob, 'evil-file')):
            st = os.lstat(link)
            self.assertTrue(stat.S_ISLNK(st.st_mode))
            self.assertEqual(st.st_uid, uid, 'the link itself belongs to the service user')

    def test_refuses_to_serve_as_root(self):
        s = bt.Server()
        self.servers.append(s)
        cases = [
            ({'user': 'root'}, r"user 'root' is root: buzon refuses to serve as root"),
            ({'user': 'nosuchuser-buzon'}, r"user 'nosuchuser-buzon' does not exist: create it \(useradd"),
            ({'group': 'root'}, r"group of user 'buzon' is root's group"),
            ({'group': 'nosuchgroup-buzon'}, r"group 'nosuchgroup-buzon' does not exist"),
        ]
        for keys, message in cases:
            with self.subTest(keys=keys):
                s.write_config(server=keys)
                for cmd in (['serve'], ['check'], ['domain', 'list']):
                    p = s.cli(*cmd)
                    self.assertEqual(p.returncode, 1, '%s %r: %s %s' % (cmd, keys, p.stdout, p.stderr))
                    self.assertRegex(p.stderr, message)
                    self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def test_unreachable_data_dir_is_refused_with_the_reason(self):
        top = tempfile.mkdtemp(prefix='buzon-closed-')   # 0700, root's
        self.addCleanup(lambda: subprocess.run(['rm', '-rf', top]))
        s = bt.Server(workdir=top)
        s.write_config()
        for cmd in (['check'], ['serve'], ['domain', 'add', bt.DOMAIN]):
            p = s.cli(*cmd)
            self.assertEqual(p.returncode, 1, '%s: %s' % (cmd, p.stderr))
            self.assertIn('user buzon cannot reach it: %s is mode 0700' % top, p.stderr)
        os.chmod(top, 0o711)
        p = s.cli('check')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('serving as buzon', p.stdout)

    def test_binds_a_privileged_port_then_drops(self):
        port = free_low_port()
        s = self.new_server(listeners={'mx': '127.0.0.1:%d' % port})
        self.assertEqual(s.addr('mx'), ('127.0.0.1', port))
        with s.connect() as c:
            self.assertReply(c.greeting, 220)
            self.assertReply(c.ehlo(), 250)
        st = proc_status(s.proc.pid)
        self.assertEqual(st['Uid'][1], str(service_ids()[0]))


class CheckTests(bt.BuzonTestCase):
    """`buzon check` tries what serve will need and names what fails."""

    def check(self, s):
        p = s.cli('check')
        return p.returncode, p.stdout + p.stderr

    def test_data_dir_that_is_a_file(self):
        s = bt.Server()
        self.servers.append(s)
        for data_dir in ('/etc/passwd', '/etc/passwd/sub', os.path.join(s.tmp, 'f', 'data')):
            with self.subTest(data_dir=data_dir):
                if data_dir.endswith('/f/data'):
                    with open(os.path.join(s.tmp, 'f'), 'w') as f:
                        f.write('x')
                s.write_config(server={'data_dir': data_dir})
                rc, out = self.check(s)
                self.assertEqual(rc, 1, out)
                self.assertRegex(out, r'is not a directory')
                p = s.cli('serve')
                self.assertNotEqual(p.returncode, 0)

    def test_address_in_use(self):
        blocker = socket.socket()
        blocker.bind(('127.0.0.1', 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        s = bt.Server()
        self.servers.append(s)
        s.write_config(listeners={'mx': '127.0.0.1:%d' % port})
        rc, out = self.check(s)
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r'buzon\.ini:\d+: listener "mx": cannot listen on 127\.0\.0\.1:%d: '
                              r'Address already in use' % port)
        blocker.close()
        rc, out = self.check(s)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r': ok \(1 listener, data_dir ')

    def test_extra_arguments(self):
        s = bt.Server()
        self.servers.append(s)
        s.write_config()
        for cmd in ('check', 'serve', 'demo'):
            p = s.cli(cmd, 'extra')
            self.assertEqual(p.returncode, 2, '%s extra: %s' % (cmd, p.stderr))
            self.assertIn("%s takes no arguments (got 'extra')" % cmd, p.stderr)

    def test_file_limit_too_small_for_the_caps(self):
        """check says when the open files limit lowers max_connections."""
        s = bt.Server()
        self.servers.append(s)
        s.write_config(listeners=bt.IMAP_LISTENERS)
        p = subprocess.run([s.bin, '--config', s.config_path, 'check'], capture_output=True, text=True,
                           env=bt.subprocess_env(), preexec_fn=lambda: __import__('resource').setrlimit(
                               __import__('resource').RLIMIT_NOFILE, (1024, 1024)))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r'note: listener "mx": max_connections lowered from 1000 to \d+: '
                                   r'the open files limit is 1024')
        self.assertRegex(p.stdout, r'note: listener "imap": max_connections lowered from 1000 to \d+')
        p = subprocess.run([s.bin, '--config', s.config_path, 'check'], capture_output=True, text=True,
                           env=bt.subprocess_env(), preexec_fn=lambda: __import__('resource').setrlimit(
                               __import__('resource').RLIMIT_NOFILE, (240, 240)))
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stderr, r'the open files limit \(240\) leaves room for \d+ connections of 1000')


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + bt.scaled(timeout)
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError('timed out waiting for ' + what)


def read(path):
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except FileNotFoundError:
        return ''


class ReloadTests(bt.BuzonTestCase):
    """SIGHUP opens the log file again by its name and follows a buzon.db
    replaced by a restore; the server goes on serving."""

    def test_sighup_reopens_the_log_file(self):
        s = self.new_server(start=False)
        # the service user writes its log: its directory is the user's
        os.mkdir(os.path.join(s.tmp, 'log'), 0o700)
        bt.as_service_user(os.path.join(s.tmp, 'log'))
        log = os.path.join(s.tmp, 'log', 'buzon.log')
        s.write_config(server={'log_file': log})
        s.start(wait_ready=False)
        wait_for(lambda: re.search(r'comp=server ready', read(log)), 15, 'ready in the log file')
        # the listening lines come before the privilege drop: on stderr
        port = int(re.search(r'listening listener=mx proto=smtp address=127\.0\.0\.1:(\d+)', s.log()).group(1))
        os.rename(log, log + '.1')
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: 'SIGHUP: log reopened' in read(log), 10, 'the reopened log')
        with bt.RawSMTP(('127.0.0.1', port)) as c:
            self.assertReply(c.ehlo(), 250)
            c.cmd('QUIT')
        wait_for(lambda: 'disconnect' in read(log), 10, 'the session in the new file')
        self.assertNotIn('disconnect', read(log + '.1'), 'lines after SIGHUP go to the new file only')
        st = os.stat(log)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        if ROOT:
            self.assertEqual(st.st_uid, service_ids()[0], 'the service user made the new file')
        self.assertEqual(s.stop(), 0)

    def test_sighup_follows_a_restored_directory(self):
        s = self.new_server()
        # A restore: a copy of buzon.db with one more user, renamed over it.
        copy_dir = os.path.join(s.tmp, 'restore')
        os.mkdir(copy_dir)
        src = sqlite3.connect(os.path.join(s.data_dir, 'buzon.db'))
        dst = sqlite3.connect(os.path.join(copy_dir, 'buzon.db'))
        src.backup(dst)
        src.close()
        dst.close()
        other = bt.Server(workdir=copy_dir)
        other.data_dir = copy_dir
        other.write_config()
        other.cli_ok('user', 'add', 'erin@' + bt.DOMAIN, '--password-stdin', input=bt.PASSWORD + '\n')
        with s.connect() as c:
            self.assertReply(c.ehlo(), 250)
            self.assertReply(c.cmd('MAIL FROM:<x@example.org>'), 250)
            self.assertReply(c.cmd('RCPT TO:<erin@%s>' % bt.DOMAIN), 550)
        os.rename(os.path.join(copy_dir, 'buzon.db'), os.path.join(s.data_dir, 'buzon.db'))
        for suffix in ('-wal', '-shm'):
            try:
                os.unlink(os.path.join(copy_dir, 'buzon.db' + suffix))
            except FileNotFoundError:
                pass
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: 'reload: directory reopened' in s.log(), 10, 'the directory reopened')
        with s.connect() as c:
            r = c.send_message('x@example.org', ['erin@' + bt.DOMAIN, bt.ALICE], bt.make_message())
            self.assertReply(r, 250)
        # a second SIGHUP with nothing replaced changes nothing
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: 'reload: directory unchanged' in s.log(), 10, 'the second reload')


class DemoTests(bt.BuzonTestCase):
    """`buzon demo` makes its user only once its ports are bound, and prints
    the password of a user it just made."""

    def run_demo(self, s, timeout=20):
        """Runs `buzon demo` until its banner is out (then SIGTERM) or it
        exits; returns (exit code, what it wrote on stderr)."""
        p = subprocess.Popen([s.bin, '--config', s.config_path, 'demo'], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=bt.subprocess_env(),
                             start_new_session=True)
        chunks = []
        reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: p.stderr.read1(4096), b'')))
        reader.start()
        deadline = time.monotonic() + bt.scaled(timeout)
        while time.monotonic() < deadline and p.poll() is None and b'Stop with Ctrl-C' not in b''.join(chunks):
            time.sleep(0.05)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        rc = p.wait(bt.scaled(20))
        reader.join(10)
        p.stderr.close()
        return rc, b''.join(chunks).decode('utf-8', 'replace')

    def test_busy_port_creates_nothing_then_the_password_is_printed(self):
        blocker = socket.socket()
        blocker.bind(('127.0.0.1', 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        s = bt.Server()
        self.servers.append(s)
        s.write_config(listeners={'mx': '127.0.0.1:%d' % port})
        rc, out = self.run_demo(s)
        blocker.close()
        self.assertNotEqual(rc, 0, out)
        self.assertIn('address already in use', out.lower())
        self.assertNotIn('password:', out)
        p = s.cli('user', 'list')
        self.assertNotIn('demo@example.test', p.stdout, 'the failed demo must not have made its user')
        rc, out = self.run_demo(s)
        self.assertEqual(rc, 0, out)
        m = re.search(r'password: (\S+)', out)
        self.assertTrue(m and not m.group(1).startswith('('), 'a user just made has its password printed: ' + out)
        self.assertIn('demo@example.test', s.cli('user', 'list').stdout)
        # the next run finds the user and says so instead
        rc, out = self.run_demo(s)
        self.assertEqual(rc, 0, out)
        self.assertIn('password: (set when the demo was first created', out)


if __name__ == '__main__':
    unittest.main()
