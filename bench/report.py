#!/usr/bin/python3
"""Markdown tables (medians of the successful runs) from $BENCH_DIR/results.jsonl.

  report.py [ID]    the records of one `bench/run` invocation (default: $BENCH_ID, else the newest)

Ratios compare with figures from the same invocation; when it did not measure the machine's limits,
the newest earlier `limits` records are used and the table says so.
"""
import json, os, re, statistics, sys
from common import RESULTS, size_label

PAIR_LABEL = {
    'sta-sta': 'sta → sta',
    'tr-sta': 'transmission 3.00 → sta',
    'sta-aria': 'sta → aria2c 1.36',
    'sta-lt': 'sta → libtorrent 2.0.8',
    'lt-lt': 'libtorrent → libtorrent (reference)',
    'lt-aria': 'libtorrent → aria2c (reference)',
}
SWARM_LABEL = {'sta': 'sta (every node)', 'lt': 'libtorrent 2.0.8 (every node)'}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, nd=1, unit=''):
    if x is None:
        return '—'
    return f'{x:,.{nd}f}{unit}'


def ratio(a, b, nd=2):
    return f'{a / b:.{nd}f}×' if a is not None and b else '—'


def ok_runs(rs):
    return f'{sum(r["ok"] for r in rs)}/{len(rs)}'


def failures(rs, key):
    """Markdown lines naming each failed run and its error."""
    return [f"- failed: {key(r)} run {r['run']}: {r.get('error', '?')}" for r in rs if not r['ok']]


def main():
    recs = [json.loads(l) for l in open(RESULTS)] if os.path.exists(RESULTS) else []
    if not recs:
        sys.exit(f'no results in {RESULTS}')
    rid = sys.argv[1] if len(sys.argv) > 1 else os.environ.get('BENCH_ID') or recs[-1]['id']
    mine = [r for r in recs if r['id'] == rid]
    meta = next((r for r in mine if r['section'] == 'meta'), None)
    out = []
    p = out.append

    p(f'## bench/run {rid}\n')
    if meta:
        p(f"sta {meta.get('sta_version', '?')} (git {meta.get('git', '?')}); {meta.get('cpu', '?')}, "
          f"{meta.get('nproc', '?')} CPUs, Linux {meta.get('kernel', '?')}; "
          f"RUNS={meta.get('runs')} SIZE={meta.get('size')} SWARM_SIZE={meta.get('swarm_size')}; "
          f"all traffic on loopback, every node on its own 127.0.0.x, opentracker on 127.0.0.1.\n")

    # ---- limits
    lim = [r for r in mine if r['section'] == 'limits']
    lim_note = ''
    if not lim and any(r['section'] == 'pairs' for r in mine):
        older = [r for r in recs if r['section'] == 'limits' and r['ok']]
        if older:
            last = older[-1]['id']
            lim = [r for r in recs if r['section'] == 'limits' and r['id'] == last]
            lim_note = f' (not measured in this run: figures from run {last})'
    loop = med([r['mb_s'] for r in lim if r['what'] == 'loopback' and r['ok']])
    sha = med([r['mb_s'] for r in lim if r['what'] == 'sha1sum' and r['ok']])
    ceiling = min(x for x in (loop, sha) if x) if (loop or sha) else None
    if lim:
        p(f'### Limits of the machine{lim_note}\n')
        p('| what | runs ok | median | runs |')
        p('|---|---|---|---|')
        for what, label in (('loopback', 'loopback TCP, one stream (`iperf3 -c 127.0.0.1`)'),
                            ('sha1sum', 'SHA-1: `sha1sum` of the source file from the page cache')):
            rs = [r for r in lim if r['what'] == what]
            if rs:
                if what == 'loopback' and rs[0].get('secs'):
                    label += f", {rs[0]['secs']} s"
                if what == 'sha1sum':
                    label += f" ({size_label(rs[0]['size'])})"
                p(f"| {label} | {ok_runs(rs)} | {f(med([r.get('mb_s') for r in rs if r['ok']]), 0)} MB/s | "
                  f"{', '.join(f(r.get('mb_s'), 0) if r['ok'] else 'failed' for r in rs)} |")
        p(f'| ceiling for a transfer: min(loopback, SHA-1) | | {f(ceiling, 0)} MB/s | |')
        p('')
        p('\n'.join(failures(lim, lambda r: r['what'])))

    # ---- create
    cr = [r for r in mine if r['section'] == 'create']
    if cr:
        size = cr[0]['size']
        p(f'### Hashing a {size_label(size)} file into a torrent (1 MiB pieces, from the page cache)\n')
        p('| tool | runs ok | wall s | CPU s | MB/s | wall vs sha1sum | peak RSS MiB |')
        p('|---|---|---|---|---|---|---|')
        base = med([r['wall_s'] for r in cr if r['tool'] == 'sha1sum' and r['ok']])
        for tool in ('sha1sum', 'sta create', 'mktorrent -l 20'):
            rs = [r for r in cr if r['tool'] == tool]
            if not rs:
                continue
            good = [r for r in rs if r['ok']]
            w = med([r['wall_s'] for r in good])
            p(f"| `{tool}` | {ok_runs(rs)} | {f(w, 2)} | {f(med([r['cpu_s'] for r in good]), 2)} | "
              f"{f(med([r['mb_s'] for r in good]), 0)} | {ratio(w, base)} | "
              f"{f(med([r['peak_rss_mib'] for r in good]), 1)} |")
        mism = [r['tool'] for r in cr if r.get('same_info_hash') is False]
        if mism:
            p(f"\nnote: info-hash differs from mktorrent's for: {', '.join(sorted(set(mism)))}")
        if failures(cr, lambda r: r['tool']):
            p('\n' + '\n'.join(failures(cr, lambda r: r['tool'])))
        s = med([r['wall_s'] for r in cr if r['tool'] == 'sta create' and r['ok']])
        if s and base:
            p(f'\nGoal: `sta create` hashes at close to `sha1sum` speed: sta create takes {s / base:.2f}× '
              f'sha1sum\'s wall time.')
        p('')

    # ---- pairs
    pr = [r for r in mine if r['section'] == 'pairs']
    if pr:
        size = pr[0]['size']
        p(f'### One seeder → one leecher, {size_label(size)}, 1 MiB pieces (mktorrent -l 20), TCP on loopback\n')
        p('Time from spawning the leecher to its completion (every piece verified), median of the successful runs.\n')
        p('| seeder → leecher | runs ok | time s | MB/s | time vs best reference | MB/s vs ceiling | '
          'leecher CPU s | leecher peak RSS MiB | leecher RssAnon MiB | seeder CPU s |')
        p('|---|---|---|---|---|---|---|---|---|---|')
        order = [k for k in PAIR_LABEL if any(r['pair'] == k for r in pr)]
        order += sorted({r['pair'] for r in pr} - set(order))
        stats = {}
        for k in order:
            good = [r for r in pr if r['pair'] == k and r['ok']]
            stats[k] = {x: med([r.get(x) for r in good]) for x in
                        ('wall_s', 'mb_s', 'leech_cpu_s', 'leech_rss_mib', 'leech_rss_anon_mib', 'seed_cpu_s',
                         'sta_completed_after_s')}
        refs = {k: v['wall_s'] for k, v in stats.items() if 'sta' not in k.split('-') and v['wall_s']}
        best_ref = min(refs.items(), key=lambda kv: kv[1]) if refs else None
        for k in order:
            s = stats[k]
            rs = [r for r in pr if r['pair'] == k]
            pct = f"{100 * s['mb_s'] / ceiling:.0f}%" if s['mb_s'] and ceiling else '—'
            p(f"| {PAIR_LABEL.get(k, k)} | {ok_runs(rs)} | {f(s['wall_s'], 2)} | {f(s['mb_s'], 0)} | "
              f"{ratio(s['wall_s'], best_ref[1] if best_ref else None)} | {pct} | {f(s['leech_cpu_s'], 2)} | "
              f"{f(s['leech_rss_mib'])} | {f(s['leech_rss_anon_mib'])} | {f(s['seed_cpu_s'], 2)} |")
        p('')
        p('\n'.join(failures(pr, lambda r: r['pair'])))
        ss = stats.get('sta-sta', {})
        if ss.get('wall_s'):
            if best_ref:
                met = 'met' if ss['wall_s'] <= best_ref[1] else 'NOT met'
                p(f"- sta → sta against the fastest reference pair ({PAIR_LABEL.get(best_ref[0], best_ref[0])}, "
                  f"{best_ref[1]:.2f} s): {best_ref[1] / ss['wall_s']:.2f}× its speed (goal ≥ 1×: {met}).")
            if ceiling:
                share = ss['mb_s'] / ceiling
                p(f"- sta → sta at {ss['mb_s']:.0f} MB/s is {100 * share:.0f}% of min(loopback TCP, SHA-1) = "
                  f"{ceiling:.0f} MB/s{lim_note} (goal ≥ 70%: {'met' if share >= 0.7 else 'NOT met'}).")
            if ss.get('leech_rss_mib'):
                p(f"- sta leecher peak RSS: {ss['leech_rss_mib']:.1f} MiB (goal < 64 MiB for 1 GiB: "
                  f"{'met' if ss['leech_rss_mib'] < 64 else 'NOT met'}{'' if size == 1 << 30 else ', measured on ' + size_label(size)}).")
        for k in order:
            s = stats[k]
            if s.get('sta_completed_after_s') is not None:
                p(f"- {PAIR_LABEL.get(k, k)}: the sta leecher's own `completed_after_secs` (from its start to its "
                  f"last piece verified) is {s['sta_completed_after_s']:.2f} s, against {s['wall_s']:.2f} s measured "
                  f"to its `complete` line.")
        p('')

    # ---- swarm
    sw = [r for r in mine if r['section'] == 'swarm']
    if sw:
        n, size = sw[0]['leechers'], sw[0]['size']
        p(f'### One seeder → {n} leechers, {size_label(size)}, started together, TCP on loopback\n')
        p('Time from spawning the leechers to the last one\'s completion; finished leechers keep seeding.\n')
        p('| swarm | runs ok | last done s | first done s | aggregate MB/s | seeder uploaded (copies) | '
          'leechers CPU s (sum) | seeder CPU s | max leecher peak RSS MiB |')
        p('|---|---|---|---|---|---|---|---|---|')
        lasts = {}
        for c in [c for c in SWARM_LABEL if any(r['client'] == c for r in sw)]:
            rs = [r for r in sw if r['client'] == c]
            g = [r for r in rs if r['ok']]
            lasts[c] = med([r['last_s'] for r in g])
            p(f"| {SWARM_LABEL[c]} | {ok_runs(rs)} | {f(lasts[c], 2)} | {f(med([r['first_s'] for r in g]), 2)} | "
              f"{f(med([r['agg_mb_s'] for r in g]), 0)} | {f(med([r.get('seed_uploaded_copies') for r in g]), 2)} | "
              f"{f(med([r['leech_cpu_s'] for r in g]), 2)} | {f(med([r['seed_cpu_s'] for r in g]), 2)} | "
              f"{f(med([r['max_leech_rss_mib'] for r in g]))} |")
        if failures(sw, lambda r: r['client']):
            p('\n' + '\n'.join(failures(sw, lambda r: r['client'])))
        if lasts.get('sta') and lasts.get('lt'):
            p(f"\n- sta's swarm finishes in {lasts['sta'] / lasts['lt']:.2f}× libtorrent's time "
              f"({'faster' if lasts['sta'] < lasts['lt'] else 'slower'}).")
        p('')

    print(re.sub(r'\n{3,}', '\n\n', '\n'.join(out)).strip() + '\n')


if __name__ == '__main__':
    main()
