#!/usr/bin/python3
"""Transfers on loopback: one seeder -> one leecher (section `pairs`), one seeder -> N leechers (`swarm8`).

  pairs.py pair SEEDER-LEECHER RUN    e.g. sta-sta, tr-sta, sta-aria, sta-lt, lt-lt, lt-aria
  pairs.py swarm sta|lt RUN           every node the same client; N = $SWARM_N (default 8)

Clients: sta (target/release/sta), lt (python3-libtorrent through bench/ltnode.py), aria (aria2c, leecher
only), tr (transmission-daemon 3.00, seeder only). One call is one measurement, holding
/tmp/sta-bench.lock from the tracker's start to the last process's stop:

 1. a fresh opentracker on 127.0.0.1:$TRACKER_PORT whose whitelist is the torrent's info-hash;
 2. the seeder, on the complete data (bench/run made it), bound to 127.0.0.2 (swarm: 127.0.0.10), waited
    for until it says it is seeding and the tracker's scrape counts one seeder;
 3. t0, then the leecher(s) spawned on empty folders, bound to 127.0.0.3 (swarm: 127.0.0.11...): each
    node has its own address because Transmission 3.00 keys peers by IP and never dials 127/8 addresses
    it hears of from a tracker (so it only ever seeds here: the leecher dials it);
 4. completion polled every 50 ms: sta's {"event":"complete"} line, libtorrent's (bench/ltnode.py)
    "complete" line, aria2c's exit 0 (--seed-time=0);
 5. at completion: leecher CPU s (utime+stime), peak RSS (VmHWM; for aria2c, which has exited by then,
    the largest VmHWM seen by the 50 ms polls: wait4's ru_maxrss would include the forking Python's),
    RssAnon, seeder CPU s since t0; in a swarm the sum over every node and the
    seeder's uploaded bytes from its next status line; swarm leechers keep seeding until the last one
    is done, as they would in the wild;
 6. everything stopped by PID (SIGTERM, SIGKILL after 10 s), each download's SHA-1 compared with the
    source's, download folders removed. Failures are recorded as failures (ok=false, error=...).

One JSON record per call is appended to $BENCH_DIR/results.jsonl. Logs of the last call of each
measurement stay in $BENCH_DIR/run/.
"""
import base64, json, os, re, shutil, subprocess, sys, time, urllib.error, urllib.parse, urllib.request
from common import (BENCH_DIR, HERE, POLL, PY, STA, TRACKER_PORT, Data, Proc, bench_lock, free_port, log,
                    listening, parse_size, proc_status_kib, record, sha1_file, wait_for)

STATUS_INTERVAL = '0.1'    # sta's status lines (and so its `complete` line) at most 0.1 s late


def http(url, data=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def quiet(f):
    """f() as a readiness test: connection errors while a daemon starts count as 'not yet'."""
    def g():
        try:
            return f()
        except (urllib.error.URLError, ConnectionError, OSError, ValueError, KeyError):
            return False
    return g


class Tracker:
    """Debian's opentracker; it serves only whitelisted info-hashes. As root it chroots to its
    folder (-d) and drops to nobody, so the whitelist path is relative."""
    def __init__(self, rundir, info_hash):
        if listening('127.0.0.1', TRACKER_PORT):
            raise RuntimeError(f'port {TRACKER_PORT} is taken: stop what listens there or set TRACKER_PORT '
                               '(and remove $BENCH_DIR/data/*.torrent so they are made again)')
        self.ih = info_hash
        with open(f'{rundir}/whitelist', 'w') as f:
            f.write(info_hash + '\n')
        self.p = Proc(['opentracker', '-i', '127.0.0.1', '-p', str(TRACKER_PORT), '-P', str(TRACKER_PORT),
                       '-w', 'whitelist', '-d', rundir], f'{rundir}/tracker.log', cwd=rundir)
        wait_for(lambda: listening('127.0.0.1', TRACKER_PORT) or not self.p.alive(), 10, 'opentracker')
        if not self.p.alive():
            raise RuntimeError(f'opentracker exited with {self.p.rc}, see {rundir}/tracker.log')

    def seeders(self):
        q = urllib.parse.quote_from_bytes(bytes.fromhex(self.ih))
        m = re.search(rb'8:completei(\d+)e', http(f'http://127.0.0.1:{TRACKER_PORT}/scrape?info_hash={q}'))
        return int(m.group(1)) if m else 0


# ------------------------------------------------------------------------------------------ clients
# Each client: __init__(role, data, ip, dir, rundir, tag) spawns it (self.p is its Proc);
# started() finishes setting it up; complete() says whether it holds every piece (raises if it died);
# uploaded() gives its payload bytes sent, if it can tell.

class Sta:
    name = 'sta'
    def __init__(self, role, data, ip, d, rundir, tag):
        self.role = role
        state = f'{rundir}/{tag}-state'
        common = ['-o', d, '-p', '0', '--bind', ip, '--api', '127.0.0.1:0', '--state-dir', state,
                  '--json', '-q', '--status-interval', STATUS_INTERVAL, '--log-file', f'{rundir}/{tag}-sta.log']
        if role == 'seed':
            argv = [STA, 'node', data.torrent, '--role', 'seeder'] + common
        else:
            # no --exit-on-complete: the harness samples the leecher's RSS and CPU at its `complete`
            # line while it still runs, then stops it (SIGTERM must give exit 0)
            argv = [STA, 'get', data.torrent] + common
        self.p = Proc(argv, f'{rundir}/{tag}-sta.out', capture=True)

    def started(self):
        pass

    def _last_status(self):
        j = self.p.last.get('status')
        return j['torrents'][0] if j and j.get('torrents') else None

    def complete(self):
        if self.role == 'seed':
            if not self.p.alive():
                raise RuntimeError(f'sta seeder exited with {self.p.rc}')
            t = self._last_status()
            if t and t.get('error'):
                raise RuntimeError(f"sta seeder: {t['error']}")
            return bool(t) and t.get('state') == 'seeding'
        if self.p.event('complete'):
            return True
        if not self.p.alive():
            raise RuntimeError(f'sta leecher exited with {self.p.rc} before completing')
        return False

    def uploaded(self):
        t = self._last_status()
        return t.get('uploaded') if t else None


class Lt:
    name = 'libtorrent'
    def __init__(self, role, data, ip, d, rundir, tag):
        self.role = role
        self.p = Proc([PY, f'{HERE}/ltnode.py', role, data.torrent, d, ip], f'{rundir}/{tag}-lt.out', capture=True)

    def started(self):
        pass

    def complete(self):
        if not self.p.alive():
            raise RuntimeError(f'ltnode.py {self.role} exited with {self.p.rc}')
        return self.p.event('complete') is not None

    def uploaded(self):
        j = self.p.last.get('status')
        return j['uploaded'] if j else None


class Aria:
    name = 'aria2c'
    def __init__(self, role, data, ip, d, rundir, tag):
        if role != 'leech':
            raise RuntimeError('aria2c is only wired as a leecher')
        self.p = Proc(['aria2c', '--no-conf=true', f'--interface={ip}', '--disable-ipv6=true',
                       '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false',
                       '--enable-peer-exchange=false', f'--listen-port={free_port(ip)}', f'--dir={d}',
                       '--file-allocation=none', '--seed-time=0', '--summary-interval=0',
                       '--auto-save-interval=0', '--console-log-level=notice', data.torrent],
                      f'{rundir}/{tag}-aria2c.out')

    def started(self):
        pass

    def complete(self):        # --seed-time=0: exits 0 once every piece is verified
        if self.p.alive():
            return False
        if self.p.rc != 0:
            raise RuntimeError(f'aria2c exited with {self.p.rc}')
        return True

    def uploaded(self):
        return None


class Transmission:
    name = 'transmission'
    def __init__(self, role, data, ip, d, rundir, tag):
        if role != 'seed':
            raise RuntimeError('transmission is only wired as a seeder (it never dials loopback peers)')
        self.data, self.dir = data, d
        self.rpc = free_port()
        conf = f'{rundir}/{tag}-tr'
        os.makedirs(conf)
        settings = {
            'dht-enabled': False, 'lpd-enabled': False, 'pex-enabled': False, 'utp-enabled': False,
            'port-forwarding-enabled': False, 'blocklist-enabled': False,
            'bind-address-ipv4': ip, 'peer-port': free_port(ip), 'peer-port-random-on-start': False,
            'rpc-enabled': True, 'rpc-bind-address': '127.0.0.1', 'rpc-port': self.rpc,
            'rpc-authentication-required': False, 'rpc-whitelist-enabled': False,
            'rpc-host-whitelist-enabled': False, 'download-dir': d, 'incomplete-dir-enabled': False,
            'start-added-torrents': True, 'speed-limit-down-enabled': False, 'speed-limit-up-enabled': False,
            'alt-speed-enabled': False, 'ratio-limit-enabled': False, 'idle-seeding-limit-enabled': False,
            'download-queue-enabled': False, 'seed-queue-enabled': False, 'queue-stalled-enabled': False,
        }
        with open(f'{conf}/settings.json', 'w') as f:
            json.dump(settings, f, indent=1)
        self.sid = ''
        self.p = Proc(['transmission-daemon', '-f', '-g', conf, '-e', f'{rundir}/{tag}-tr.log'],
                      f'{rundir}/{tag}-tr.out')

    def call(self, method, args):
        body = json.dumps({'method': method, 'arguments': args}).encode()
        for _ in range(3):
            try:
                r = json.loads(http(f'http://127.0.0.1:{self.rpc}/transmission/rpc', body,
                                    {'X-Transmission-Session-Id': self.sid}))
                if r.get('result') != 'success':
                    raise RuntimeError(f'transmission {method}: {r.get("result")}')
                return r['arguments']
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise
                self.sid = e.headers['X-Transmission-Session-Id']
        raise RuntimeError('transmission rpc: no session id')

    def started(self):
        wait_for(quiet(lambda: self.call('session-get', {}) is not None), 30, 'transmission rpc')
        with open(self.data.torrent, 'rb') as f:
            meta = base64.b64encode(f.read()).decode()
        self.call('torrent-add', {'metainfo': meta, 'download-dir': self.dir, 'paused': False})

    def _get(self):
        t = self.call('torrent-get', {'fields': ['percentDone', 'leftUntilDone', 'status', 'error',
                                                 'errorString', 'uploadedEver']})['torrents']
        return t[0] if t else None

    def complete(self):
        if not self.p.alive():
            raise RuntimeError(f'transmission-daemon exited with {self.p.rc}')
        try:
            t = self._get()
        except (urllib.error.URLError, OSError):
            return False
        if t and t['error']:
            raise RuntimeError(f"transmission: {t['errorString']}")
        return bool(t) and t['percentDone'] == 1 and t['leftUntilDone'] == 0 and t['status'] == 6

    def uploaded(self):
        t = self._get()
        return t['uploadedEver'] if t else None


CLIENTS = {'sta': Sta, 'lt': Lt, 'aria': Aria, 'tr': Transmission}


# -------------------------------------------------------------------------------------- measurement
def mib(kib):
    return round(kib / 1024, 1) if kib else None


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def start_seeder(kind, data, ip, rundir, tracker, timeout):
    seeder = CLIENTS[kind]('seed', data, ip, data.dir, rundir, 'seed')
    t = time.monotonic()
    seeder.started()
    wait_for(seeder.complete, timeout, f'{kind} seeder to check its data')
    wait_for(quiet(lambda: tracker.seeders() >= 1), 60, 'the tracker to count the seeder')
    return seeder, round(time.monotonic() - t, 2)


def transfer_timeout(size):
    return float(os.environ.get('TIMEOUT', 120 + size / 2e6))    # 2 MB/s is slow even for Transmission


def poll_until(nodes, done, timeout):
    """Poll complete() of each node not yet done every 50 ms; done[i] = monotonic time it completed."""
    end = time.monotonic() + timeout
    while True:
        for i, n in enumerate(nodes):
            n.p.sample()
            if done[i] is None and n.complete():
                done[i] = time.monotonic()
        if all(d is not None for d in done):
            return
        if time.monotonic() > end:
            raise TimeoutError(f'{sum(d is None for d in done)} of {len(nodes)} leechers not complete '
                               f'after {timeout:.0f} s')
        time.sleep(POLL)


def verify(data, dirs):
    """Names of the folders whose copy differs from the source."""
    bad = []
    for d in dirs:
        f = os.path.join(d, data.name)
        if not os.path.exists(f) or os.path.getsize(f) != data.size or sha1_file(f) != data.sha1:
            bad.append(d)
    return bad


def pair(spec, run):
    s_kind, _, l_kind = spec.partition('-')
    if s_kind not in CLIENTS or l_kind not in CLIENTS:
        sys.exit(f'pairs.py: bad pair {spec!r}: SEEDER-LEECHER, each one of {", ".join(CLIENTS)}')
    data = Data(parse_size(os.environ.get('SIZE', '1GiB')))
    rundir, leechdir = f'{BENCH_DIR}/run/pair-{spec}', f'{BENCH_DIR}/leech'
    rec = {'section': 'pairs', 'pair': spec, 'run': run, 'size': data.size, 'ok': False}
    procs, tracker = [], None
    with bench_lock():
        fresh(rundir)
        fresh(leechdir)
        try:
            data.warm()
            tracker = Tracker(rundir, data.info_hash())
            seeder, rec['seed_ready_s'] = start_seeder(s_kind, data, '127.0.0.2', rundir, tracker,
                                                       60 + data.size / 10e6)
            procs.append(seeder)
            s_cpu0 = seeder.p.cpu_s()
            log(f'pairs {spec} run {run}: seeder ready in {rec["seed_ready_s"]} s, starting the leecher')
            t0 = time.monotonic()
            leecher = CLIENTS[l_kind]('leech', data, '127.0.0.3', leechdir, rundir, 'leech')
            procs.append(leecher)
            leecher.started()
            done = [None]
            poll_until([leecher], done, transfer_timeout(data.size))
            t1 = done[0]
            anon = proc_status_kib(leecher.p.pid, 'RssAnon') if leecher.p.alive() else None
            rec.update(wall_s=round(t1 - t0, 3), mb_s=round(data.size / 1e6 / (t1 - t0), 1),
                       leech_cpu_s=round(leecher.p.cpu_s(), 2), leech_rss_mib=mib(leecher.p.peak_rss_kib()),
                       seed_cpu_s=round(seeder.p.cpu_s() - s_cpu0, 2), seed_rss_mib=mib(seeder.p.peak_rss_kib()))
            if anon is not None:
                rec['leech_rss_anon_mib'] = mib(anon)
            if l_kind == 'sta':
                # sta's own count, from its start to the last piece verified
                rec['sta_completed_after_s'] = leecher.p.event('complete')[1].get('completed_after_secs')
            log(f'pairs {spec} run {run}: {rec["wall_s"]} s, {rec["mb_s"]} MB/s, leecher {rec["leech_cpu_s"]} '
                f'CPU s, {rec["leech_rss_mib"]} MiB peak')
        except Exception as e:
            rec['error'] = f'{type(e).__name__}: {e}'
            log(f'pairs {spec} run {run}: FAILED: {rec["error"]} (logs in {rundir})')
        finally:
            for c in reversed(procs):
                c.p.stop()
            if tracker:
                tracker.p.stop()
        if 'wall_s' in rec:
            rec['leech_exit'] = leecher.p.rc      # a clean stop on SIGTERM is 0 too
            bad = verify(data, [leechdir])
            rec['verified'] = not bad
            if bad:
                rec['error'] = 'download differs from the source (SHA-1)'
            elif rec['leech_exit'] != 0:
                rec['error'] = f"leecher exited with {rec['leech_exit']}"
            rec['ok'] = 'error' not in rec
        shutil.rmtree(leechdir, ignore_errors=True)
    print(json.dumps(record(rec)))
    return 0 if rec['ok'] else 1


def swarm(kind, run):
    if kind not in ('sta', 'lt'):
        sys.exit(f'pairs.py: bad swarm client {kind!r}: sta or lt')
    n = int(os.environ.get('SWARM_N', 8))
    data = Data(parse_size(os.environ['SWARM_SIZE']))
    rundir = f'{BENCH_DIR}/run/swarm-{kind}'
    dirs = [f'{BENCH_DIR}/swarm/leech{i}' for i in range(n)]
    rec = {'section': 'swarm', 'client': kind, 'run': run, 'size': data.size, 'leechers': n, 'ok': False}
    procs, tracker = [], None
    with bench_lock():
        fresh(rundir)
        for d in dirs:
            fresh(d)
        try:
            data.warm()
            tracker = Tracker(rundir, data.info_hash())
            seeder, rec['seed_ready_s'] = start_seeder(kind, data, '127.0.0.10', rundir, tracker,
                                                       60 + data.size / 10e6)
            procs.append(seeder)
            s_cpu0 = seeder.p.cpu_s()
            log(f'swarm {kind} run {run}: seeder ready in {rec["seed_ready_s"]} s, starting {n} leechers')
            t0 = time.monotonic()
            leechers = [CLIENTS[kind]('leech', data, f'127.0.0.{11 + i}', dirs[i], rundir, f'leech{i}')
                        for i in range(n)]
            procs += leechers
            for l in leechers:
                l.started()
            done = [None] * n
            poll_until(leechers, done, transfer_timeout(data.size * n))
            t1 = max(done)
            cpu = [l.p.cpu_s() for l in leechers]
            rss = [l.p.peak_rss_kib() for l in leechers]
            seed_cpu = seeder.p.cpu_s() - s_cpu0
            rec.update(last_s=round(t1 - t0, 3), first_s=round(min(done) - t0, 3),
                       done_s=[round(d - t0, 3) for d in done],
                       agg_mb_s=round(n * data.size / 1e6 / (t1 - t0), 1),
                       leech_cpu_s=round(sum(cpu), 2), seed_cpu_s=round(seed_cpu, 2),
                       max_leech_rss_mib=mib(max(rss)))
            time.sleep(1.2)       # let the seeder print a status line from after the last completion
            up = seeder.uploaded()
            if up is not None:
                rec['seed_uploaded_copies'] = round(up / data.size, 2)
            log(f'swarm {kind} run {run}: last leecher done after {rec["last_s"]} s '
                f'(first {rec["first_s"]} s), seeder sent {rec.get("seed_uploaded_copies")} copies')
        except Exception as e:
            rec['error'] = f'{type(e).__name__}: {e}'
            log(f'swarm {kind} run {run}: FAILED: {rec["error"]} (logs in {rundir})')
        finally:
            for c in reversed(procs):
                c.p.stop()
            if tracker:
                tracker.p.stop()
        if 'last_s' in rec:
            bad = verify(data, dirs)
            rec['verified'] = not bad
            if bad:
                rec['error'] = f'{len(bad)} of {n} downloads differ from the source (SHA-1)'
            rec['ok'] = 'error' not in rec
        shutil.rmtree(f'{BENCH_DIR}/swarm', ignore_errors=True)
    print(json.dumps(record(rec)))
    return 0 if rec['ok'] else 1


if __name__ == '__main__':
    what, arg, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.exit({'pair': pair, 'swarm': swarm}[what](arg, run))
