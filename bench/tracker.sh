#!/usr/bin/env bash
# Tracker load benchmark: `sta tracker` and Debian's opentracker side by side, same load
# from `sta-bench tracker-udp|tracker-http` (see crates/sta-bench). Never run by CI.
#
# For each tracker and protocol, RUNS times: start the tracker pinned to core 0, pin the
# load generator to core 1, announce every simulated peer once (PEERS peers over TORRENTS
# torrents), read the tracker's RSS (idle, and holding PEERS peers), then DUR seconds of
# closed-loop load with a realistic event mix (started/none/completed/stopped), measuring
# announces/s, p50/p99 latency and the tracker's CPU. Trackers are stopped by PID.
# Prints raw RESULT lines and a markdown table on stdout; logs go to $WORK.
#
# env: RUNS=3 DUR=20 TORRENTS=10000 PEERS=100000 CONC=64 WORK=/tmp/sta-trackerbench
#      TRACKERS="sta opentracker" PROTOS="udp http" BUILD=0 (use the release binaries as they are)
# Needs: cargo, opentracker (apt-get install -y opentracker), taskset, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3} DUR=${DUR:-20} TORRENTS=${TORRENTS:-10000} PEERS=${PEERS:-100000} CONC=${CONC:-64}
WORK=${WORK:-/tmp/sta-trackerbench} TRACKERS=${TRACKERS:-"sta opentracker"} PROTOS=${PROTOS:-"udp http"}
STA=$ROOT/target/release/sta BENCH=$ROOT/target/release/sta-bench

die() { echo "tracker.sh: $*" >&2; exit 1; }
command -v taskset >/dev/null || die "taskset missing (util-linux)"
if [[ " $TRACKERS " == *" opentracker "* ]]; then
  command -v opentracker >/dev/null || die "opentracker missing: apt-get install -y opentracker"
fi
if [ "${BUILD:-1}" = 1 ]; then
  (cd "$ROOT" && flock /tmp/sta-cargo.lock cargo build --release -q -p sta -p sta-bench) || die "build failed"
fi
rm -rf "$WORK"; mkdir -p "$WORK/otroot"
# Debian's opentracker serves whitelisted info-hashes only: give it exactly the load's hashes.
"$BENCH" hashes "$TORRENTS" > "$WORK/otroot/whitelist.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

one_run() {  # one_run TRACKER PROTO IDX -> RESULT line
  local tracker=$1 proto=$2 idx=$3 port log="$WORK/$1-$2-$3" tpid
  port=$(free_port)
  case $tracker in
    sta) taskset -c 0 "$STA" tracker --http "127.0.0.1:$port" --udp "127.0.0.1:$port" \
           --data-dir "$WORK/sta-data-$idx-$proto" --json > "$log.out" 2> "$log.err" &
         tpid=$! ;;
    opentracker) taskset -c 0 opentracker -i 127.0.0.1 -p "$port" -P "$port" \
           -d "$WORK/otroot" -w whitelist.txt > "$log.out" 2> "$log.err" &
         tpid=$! ;;
    *) die "unknown tracker $tracker" ;;
  esac
  ( sleep $((DUR + 300)); kill "$tpid" 2>/dev/null ) > /dev/null 2>&1 &   # watchdog
  local wpid=$!
  # Ready: the port answers (the fill retries lost announces anyway).
  for _ in $(seq 1 100); do
    if [ "$proto" = udp ] && ss -Hlnu "sport = :$port" | grep -q .; then break; fi
    if [ "$proto" = http ] && ss -Hlnt "sport = :$port" | grep -q .; then break; fi
    sleep 0.1
  done
  sleep 1   # opentracker loads its whitelist after binding
  local rss0; rss0=$(rss_kib "$tpid")
  taskset -c 1 "$BENCH" "tracker-$proto" --target "127.0.0.1:$port" --torrents "$TORRENTS" \
    --peers "$PEERS" --duration "$DUR" --concurrency "$CONC" --fill-pause 2 \
    > "$log.load.json" 2> "$log.load.err" &
  local lpid=$!
  for _ in $(seq 1 1200); do grep -q FILLED "$log.load.err" && break; kill -0 $lpid 2>/dev/null || break; sleep 0.1; done
  sleep 1
  local rss1; rss1=$(rss_kib "$tpid")
  local c0 t0 c1 t1
  sleep 1.5   # the load starts after the 2 s pause
  c0=$(cpu_ticks "$tpid"); t0=$(date +%s.%N)
  wait "$lpid" || die "load generator failed: $(cat "$log.load.err")"
  c1=$(cpu_ticks "$tpid"); t1=$(date +%s.%N)
  local rss2; rss2=$(rss_kib "$tpid")
  kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null || true
  kill "$wpid" 2>/dev/null || true
  local cpu; cpu=$(python3 -c "print(round(100*($c1-$c0)/100/($t1-$t0)))")
  python3 - "$log.load.json" "$tracker" "$proto" "$idx" "$rss0" "$rss1" "$rss2" "$cpu" "$PEERS" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
t, p, i, rss0, rss1, rss2, cpu, peers = sys.argv[2:]
per_peer = (int(rss1) - int(rss0)) * 1024 / int(peers)
print(f"RESULT tracker={t} proto={p} run={i} announces_per_sec={r['announces_per_sec']:.0f} "
      f"p50_us={r['p50_us']} p99_us={r['p99_us']} failures={r['failures']} timeouts={r['timeouts']} "
      f"cpu_pct={cpu} rss_idle_kib={rss0} rss_filled_kib={rss1} rss_after_kib={rss2} bytes_per_peer={per_peer:.0f}")
PY
}

RESULTS="$WORK/results.txt"; : > "$RESULTS"
# Runs alternate between trackers so that noise from other work on the machine spreads evenly.
for proto in $PROTOS; do
  for i in $(seq 1 "$RUNS"); do
    for tracker in $TRACKERS; do
      echo "== $tracker $proto run $i" >&2
      one_run "$tracker" "$proto" "$i" | tee -a "$RESULTS"
    done
  done
done

python3 - "$RESULTS" "$DUR" "$PEERS" "$TORRENTS" "$CONC" <<'PY'
import sys, statistics as st
rows = [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in open(sys.argv[1]) if l.startswith("RESULT")]
dur, peers, torrents, conc = sys.argv[2:]
print(f"\n{len(rows)} runs of {dur} s, {peers} peers over {torrents} torrents, {conc} requests in flight; medians\n")
print("| tracker | protocol | announces/s | p50 | p99 | tracker CPU | RSS idle → with peers | bytes/peer |")
print("|---|---|---|---|---|---|---|---|")
keys = sorted({(r["tracker"], r["proto"]) for r in rows}, key=lambda k: (k[1] != "udp", k[0]))
for t, p in keys:
    rs = [r for r in rows if r["tracker"] == t and r["proto"] == p]
    m = lambda k: st.median(float(r[k]) for r in rs)
    print(f"| {t} | {p.upper()} | {m('announces_per_sec'):,.0f} | {m('p50_us')/1000:.2f} ms | {m('p99_us')/1000:.2f} ms "
          f"| {m('cpu_pct'):.0f}% | {m('rss_idle_kib')/1024:.1f} → {m('rss_filled_kib')/1024:.1f} MiB | {m('bytes_per_peer'):.0f} |")
PY
