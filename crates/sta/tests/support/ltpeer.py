#!/usr/bin/python3
"""A libtorrent (python3-libtorrent 2.0.8) peer for sta's interop tests.

  ltpeer.py seed|leech TORRENT DIR IP

Loopback settings from reference-peers.md: no DHT/LSD/UPnP/NAT-PMP, TCP only,
several connections per IP allowed. Prints JSON lines on stdout:
{"event":"ready","port":N}, {"event":"status","progress":x,"peers":n} every
half second, {"event":"complete"} once every piece is verified (for a seed,
after its own check). Runs until SIGTERM. SIGUSR1 forces a re-announce.
"""
import json, signal, sys, time
import libtorrent as lt

mode, torrent, save, ip = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ses = lt.session({
    'listen_interfaces': f'{ip}:0', 'outgoing_interfaces': ip,
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'allow_multiple_connections_per_ip': True,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'alert_mask': 0,
})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save
h = ses.add_torrent(atp)
stop = False
reannounce = False
def on_term(*_):
    global stop
    stop = True
def on_usr1(*_):
    global reannounce
    reannounce = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
signal.signal(signal.SIGUSR1, on_usr1)
print(json.dumps({"event": "ready", "port": ses.listen_port()}), flush=True)
said = False
last = 0.0
while not stop:
    if reannounce:
        reannounce = False
        h.force_reannounce(0, -1, lt.torrent_handle.ignore_min_interval)
    s = h.status()
    if s.is_seeding and not said:
        said = True
        print(json.dumps({"event": "complete"}), flush=True)
    if time.time() - last > 0.5:
        last = time.time()
        print(json.dumps({"event": "status", "progress": s.progress, "peers": s.num_peers,
                          "state": str(s.state), "total_download": s.total_payload_download,
                          "total_upload": s.total_payload_upload}), flush=True)
    time.sleep(0.05)
