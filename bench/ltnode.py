#!/usr/bin/python3
"""A libtorrent peer (python3-libtorrent 2.0.8) for bench/pairs.py.

  ltnode.py seed|leech TORRENT DIR IP

Listens on IP (any free port) and connects and announces from it; no DHT, LSD, UPnP, NAT-PMP or uTP;
several connections per IP allowed. Prints JSON lines on stdout: {"event":"ready","port":N} once
listening, {"event":"complete"} once every piece is verified (a seeder: after checking its data),
and {"event":"status",...} every 0.5 s with payload bytes up and down. Runs (seeding) until SIGTERM.
"""
import json, signal, sys, time
import libtorrent as lt

mode, torrent, save, ip = sys.argv[1:5]
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
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

def out(**kw):
    print(json.dumps(kw), flush=True)

out(event='ready', port=ses.listen_port())
said, last = False, 0.0
while not stop:
    s = h.status()
    if s.is_seeding and not said:
        said = True
        out(event='complete')
    now = time.monotonic()
    if now - last >= 0.5:
        last = now
        out(event='status', state=str(s.state), progress=s.progress, peers=s.num_peers,
            downloaded=s.total_payload_download, uploaded=s.total_payload_upload)
    time.sleep(0.05)
