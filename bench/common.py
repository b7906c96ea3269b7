"""Shared pieces of the bench/ scripts: paths and knobs from the environment, the lock,
child processes stopped by PID, /proc sampling, result records.

Every figure that goes into a table is one JSON object appended to $BENCH_DIR/results.jsonl,
tagged with the id of the `bench/run` invocation (BENCH_ID) so report.py can show one run.
"""
import contextlib, fcntl, hashlib, json, os, signal, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, 'bench')
BENCH_DIR = os.environ.get('BENCH_DIR', '/var/tmp/sta-bench')
BENCH_ID = os.environ.get('BENCH_ID') or time.strftime('%Y%m%dT%H%M%S')
RESULTS = os.path.join(BENCH_DIR, 'results.jsonl')
STA = os.environ.get('STA', os.path.join(ROOT, 'target', 'release', 'sta'))
PY = '/usr/bin/python3'
LOCK = '/tmp/sta-bench.lock'
TRACKER_PORT = int(os.environ.get('TRACKER_PORT', 26970))   # baked into the torrents' announce URL
ANNOUNCE = f'http://127.0.0.1:{TRACKER_PORT}/announce'
CLK = os.sysconf('SC_CLK_TCK')
POLL = 0.05


def log(*a):
    print(time.strftime('%H:%M:%S'), *a, file=sys.stderr, flush=True)


def parse_size(s):
    """'1GiB', '64MiB', '10MB', '4096' -> bytes."""
    s = s.strip()
    units = {'KIB': 1 << 10, 'MIB': 1 << 20, 'GIB': 1 << 30, 'KB': 10**3, 'MB': 10**6, 'GB': 10**9,
             'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'B': 1, '': 1}
    num = s.rstrip('KMGiBkmgb')
    return int(float(num) * units[s[len(num):].upper()])


def size_label(n):
    for unit, f in (('GiB', 1 << 30), ('MiB', 1 << 20), ('KiB', 1 << 10)):
        if n >= f and n % f == 0:
            return f'{n // f}{unit}'
    return f'{n}B'


class Data:
    """The source file, its torrent (mktorrent -l 20, v1, announce to our tracker) and its SHA-1,
    made by `bench/run` under $BENCH_DIR/data and reused across runs."""
    def __init__(self, size):
        self.size = size
        self.label = size_label(size)
        self.dir = os.path.join(BENCH_DIR, 'data')
        self.name = f'bench-{self.label}.bin'
        self.path = os.path.join(self.dir, self.name)
        self.torrent = os.path.join(self.dir, f'bench-{self.label}.torrent')
        self.sha1 = open(self.path + '.sha1').read().split()[0]

    def info_hash(self):
        import libtorrent as lt
        return str(lt.torrent_info(self.torrent).info_hashes().v1)

    def warm(self):
        """Read the source once so every measurement starts from the page cache."""
        with open(self.path, 'rb') as f:
            while f.read(1 << 24):
                pass


@contextlib.contextmanager
def bench_lock():
    """One measurement at a time on this machine (same lock as `flock /tmp/sta-bench.lock`)."""
    with open(LOCK, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def proc_cpu_s(pid):
    """utime + stime of a live process, seconds."""
    with open(f'/proc/{pid}/stat') as f:
        s = f.read()
    fields = s[s.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_status_kib(pid, key):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def free_port(ip='127.0.0.1'):
    s = socket.socket()
    s.bind((ip, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def listening(ip, port):
    """Whether some socket listens on ip:port (TCP), read from /proc/net/tcp without connecting
    (a probe connection would count as a client to servers such as `iperf3 -s -1`)."""
    want = f'{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}'
    anyaddr = f'00000000:{port:04X}'
    with open('/proc/net/tcp') as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == '0A' and local in (want, anyaddr):
                return True
    return False


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(POLL)
    raise TimeoutError(f'timed out after {timeout:.0f} s waiting for {what}')


class Proc:
    """A child of this harness, in its own session, stopped only through its own PID.
    With capture=True its stdout is logged and its JSON lines parsed as they arrive: the first line
    of each "event" is kept with the monotonic time it arrived, and the newest of each."""
    def __init__(self, argv, logpath, capture=False, cwd=None, env=None):
        self.argv = argv
        self.log = open(logpath, 'ab')
        self.log.write(('$ ' + ' '.join(argv) + '\n').encode())
        self.log.flush()
        self.first = {}          # event name -> (monotonic time, object)
        self.last = {}           # event name -> object
        self.rc = None
        self.rusage = None
        self.hwm = 0
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if capture else self.log,
                                  stderr=self.log, cwd=cwd, env=env, start_new_session=True)
        self.pid = self.p.pid
        self.reader = None
        if capture:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self):
        for raw in self.p.stdout:
            t = time.monotonic()
            self.log.write(raw)
            try:
                j = json.loads(raw)
            except ValueError:
                continue
            if isinstance(j, dict) and 'event' in j:
                self.first.setdefault(j['event'], (t, j))
                self.last[j['event']] = j

    def event(self, name):
        """(time, object) of the first JSON line with "event": name, or None."""
        return self.first.get(name)

    def alive(self):
        if self.rc is not None:
            return False
        pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.rc = os.waitstatus_to_exitcode(status)
        self.rusage = ru
        return False

    def wait(self, timeout):
        end = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    def cpu_s(self):
        """CPU seconds so far: /proc while alive, rusage once reaped."""
        if self.alive():
            try:
                return proc_cpu_s(self.pid)
            except OSError:
                self.wait(5)
        return self.rusage.ru_utime + self.rusage.ru_stime

    def sample(self):
        """Track the peak RSS (VmHWM) while the process lives. ru_maxrss from wait4 is no use:
        Linux carries the forking Python's RSS over exec into it."""
        v = proc_status_kib(self.pid, 'VmHWM') if self.alive() else None
        if v is not None:
            self.hwm = max(self.hwm, v)
        return self.hwm

    def peak_rss_kib(self):
        """Largest VmHWM seen (sampled by the 50 ms polls and now); None if never seen alive."""
        return self.sample() or None

    def stop(self, grace=10):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not self.wait(grace):
                os.kill(self.pid, signal.SIGKILL)
                self.wait(10)
        if self.reader:
            self.reader.join(5)      # the rest of its output, up to end of file
        self.log.close()


def run_timed(argv):
    """Run to the end under GNU time (a small parent, so the peak RSS is the command's own);
    returns (wall s, CPU s of the command and its children, peak RSS KiB)."""
    with tempfile.NamedTemporaryFile('r', prefix='sta-bench-time.') as tf:
        t0 = time.monotonic()
        r = subprocess.run(['/usr/bin/time', '-f', '%U %S %M', '-o', tf.name] + argv,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(f'{" ".join(argv)}: exit {r.returncode}: {r.stderr.decode(errors="replace").strip()[-300:]}')
        u, s, m = tf.read().split()[-3:]
    return wall, float(u) + float(s), int(m)


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                return h.hexdigest()
            h.update(b)


def record(rec):
    """Append one result (tagged with the run id and date) and echo it to stderr."""
    rec = dict(id=BENCH_ID, date=time.strftime('%Y-%m-%dT%H:%M:%S'), **rec)
    os.makedirs(BENCH_DIR, exist_ok=True)
    with open(RESULTS, 'a') as f:
        f.write(json.dumps(rec) + '\n')
    return rec


def meta():
    """Record what was measured: sta's version and commit, the machine, the knobs."""
    def sh(cmd):
        return subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = sh('git status --porcelain --untracked-files=no')
    record({'section': 'meta', 'ok': True, 'runs': int(os.environ.get('RUNS', 3)),
            'size': os.environ.get('SIZE'), 'swarm_size': os.environ.get('SWARM_SIZE'),
            'sta_version': sh(f'{STA} --version'),
            'git': sh('git rev-parse --short HEAD') + (' + uncommitted changes' if dirty else ''),
            'cpu': sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"), 'nproc': os.cpu_count(),
            'kernel': os.uname().release})


if __name__ == '__main__' and sys.argv[1:] == ['meta']:
    meta()
