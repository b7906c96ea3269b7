#!/usr/bin/python3
"""Machine limits and torrent creation speed (sections `limits` and `create` of bench/run).

  limits.py limits RUNS   loopback TCP, one stream (iperf3 -c 127.0.0.1 -t $IPERF_SECS, default 10) and
                          sha1sum of the source file from the page cache; RUNS each, one record per run
  limits.py create RUNS   sha1sum vs `sta create --piece-length 1MiB` vs `mktorrent -l 20` on the same file,
                          from the page cache: wall and CPU seconds (children included), peak RSS

Each single measurement holds /tmp/sta-bench.lock. Records go to $BENCH_DIR/results.jsonl.
"""
import json, os, shutil, subprocess, sys, time
from common import (ANNOUNCE, BENCH_DIR, STA, Data, Proc, bench_lock, free_port, log, parse_size,
                    listening, record, run_timed, wait_for)

IPERF_SECS = int(os.environ.get('IPERF_SECS', 10))


RECORDS = []


def save(rec):
    RECORDS.append(record(rec))


def iperf_once(workdir):
    port = free_port()
    server = Proc(['iperf3', '-s', '-B', '127.0.0.1', '-p', str(port), '-1'], f'{workdir}/iperf3-server.log')
    try:
        wait_for(lambda: listening('127.0.0.1', port), 10, 'iperf3 server')
        out = subprocess.run(['iperf3', '-c', '127.0.0.1', '-p', str(port), '-t', str(IPERF_SECS), '-J'],
                             capture_output=True, text=True, timeout=IPERF_SECS + 30)
        j = json.loads(out.stdout)
        if 'error' in j:
            raise RuntimeError(f"iperf3: {j['error']}")
        e = j['end']
        return {'mb_s': round(e['sum_received']['bits_per_second'] / 8e6, 1),
                'sender_cpu_pct': round(e['cpu_utilization_percent']['host_total'], 1),
                'receiver_cpu_pct': round(e['cpu_utilization_percent']['remote_total'], 1)}
    finally:
        server.stop(grace=2)


def limits(data, runs, workdir):
    if shutil.which('iperf3'):
        for i in range(1, runs + 1):
            rec = {'section': 'limits', 'what': 'loopback', 'run': i, 'secs': IPERF_SECS}
            try:
                with bench_lock():
                    rec.update(iperf_once(workdir), ok=True)
            except Exception as e:
                rec.update(ok=False, error=f'{type(e).__name__}: {e}')
            log('limits loopback', i, rec.get('mb_s', rec.get('error')))
            save(rec)
    else:
        save({'section': 'limits', 'what': 'loopback', 'run': 1, 'ok': False, 'error': 'iperf3 not installed'})
    for i in range(1, runs + 1):
        rec = {'section': 'limits', 'what': 'sha1sum', 'run': i, 'size': data.size}
        try:
            with bench_lock():
                data.warm()
                wall, cpu, _ = run_timed(['sha1sum', data.path])
            rec.update(ok=True, wall_s=round(wall, 3), cpu_s=round(cpu, 2), mb_s=round(data.size / 1e6 / wall, 1))
        except Exception as e:
            rec.update(ok=False, error=f'{type(e).__name__}: {e}')
        log('limits sha1sum', i, rec.get('mb_s', rec.get('error')))
        save(rec)


def create(data, runs, workdir):
    out = f'{workdir}/out.torrent'
    tools = {
        'sha1sum': ['sha1sum', data.path],
        'sta create': [STA, 'create', data.path, '-o', out, '-t', ANNOUNCE, '--piece-length', '1MiB',
                       '--force', '-q'],
        'mktorrent -l 20': ['mktorrent', '-l', '20', '-a', ANNOUNCE, '-o', out, data.path],
    }
    for i in range(1, runs + 1):
        for tool, argv in tools.items():       # interleaved, so background noise falls on all three
            rec = {'section': 'create', 'tool': tool, 'run': i, 'size': data.size, 'cmd': ' '.join(argv)}
            try:
                with bench_lock():
                    if os.path.exists(out):
                        os.remove(out)          # mktorrent refuses to overwrite
                    data.warm()
                    wall, cpu, rss = run_timed(argv)
                rec.update(ok=True, wall_s=round(wall, 3), cpu_s=round(cpu, 2),
                           mb_s=round(data.size / 1e6 / wall, 1), peak_rss_mib=round(rss / 1024, 1))
                if tool != 'sha1sum':
                    rec['same_info_hash'] = same_info(out, data.torrent)
            except Exception as e:
                rec.update(ok=False, error=f'{type(e).__name__}: {e}')
            log('create', tool, i, rec.get('wall_s', rec.get('error')))
            save(rec)


def same_info(a, b):
    """Whether two torrents have the same v1 info-hash (they should: same file, 1 MiB pieces)."""
    import libtorrent as lt
    return str(lt.torrent_info(a).info_hashes().v1) == str(lt.torrent_info(b).info_hashes().v1)


def main():
    section, runs = sys.argv[1], int(sys.argv[2])
    data = Data(parse_size(os.environ.get('SIZE', '1GiB')))
    workdir = os.path.join(BENCH_DIR, 'run', section)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    {'limits': limits, 'create': create}[section](data, runs, workdir)
    return 0 if all(r['ok'] for r in RECORDS) else 1


if __name__ == '__main__':
    sys.exit(main())
