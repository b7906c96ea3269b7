#!/usr/bin/python3
"""Writes the seed corpus, fuzz/corpus/<target>/, beside this script.

A handful of valid and edge-case inputs per target, a few KiB each: libFuzzer
grows its own working corpus from these (bench/fuzz keeps that one outside the
repository), and tests/fuzz_corpus.rs replays these in CI. Real torrents come
from mktorrent, transmission-create and python3-libtorrent (Debian packages:
run with /usr/bin/python3); the rest is written by hand below. Run it again
after changing a seed and commit the files it writes.
"""
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
HOSTILE = os.path.join(HERE, "..", "tests", "data", "hostile")


def be(v):
    """Canonical bencode, enough for the seeds (keys sorted)."""
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(be(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(be(k) + be(x) for k, x in items) + b"e"
    raise TypeError(v)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def real_torrents(tmp):
    """Torrents made by the tools sta interoperates with, on tiny content."""
    content = os.path.join(tmp, "content")
    os.makedirs(os.path.join(content, "sub", "deeper"))
    with open(os.path.join(content, "a.bin"), "wb") as f:
        f.write(bytes(range(256)) * 80)  # 20480 bytes: not a multiple of the piece
    with open(os.path.join(content, "sub", "deeper", "b.txt"), "wb") as f:
        f.write(b"sta fuzz seed\n" * 300)
    open(os.path.join(content, "sub", "empty"), "wb").close()
    single = os.path.join(content, "a.bin")
    out = {}

    def mk(name, *args):
        path = os.path.join(tmp, name)
        subprocess.run(["mktorrent", "-d", "-o", path, *args], check=True, capture_output=True)
        out[name] = open(path, "rb").read()

    mk("mktorrent_single.torrent", "-l", "15", "-a", "http://127.0.0.1:6969/announce",
       "-a", "udp://127.0.0.1:6969", "-w", "http://127.0.0.1:8000/seed/,http://127.0.0.2:8000/seed/", "-c", "seed", single)
    mk("mktorrent_multi_private.torrent", "-l", "15", "-p",
       "-a", "http://127.0.0.1:6969/announce", content)

    path = os.path.join(tmp, "transmission_multi.torrent")
    subprocess.run(["transmission-create", "-s", "16", "-t", "http://127.0.0.1:6969/announce",
                    "-o", path, content], check=True, capture_output=True)
    out["transmission_multi.torrent"] = open(path, "rb").read()

    import libtorrent as lt

    for name, flags in [("libtorrent_hybrid.torrent", 0),
                        ("libtorrent_v1.torrent", lt.create_torrent.v1_only)]:
        fs = lt.file_storage()
        lt.add_files(fs, content)
        ct = lt.create_torrent(fs, 16384, flags=flags)
        ct.add_tracker("http://127.0.0.1:6969/announce", 0)
        ct.add_tracker("http://127.0.0.2:6969/announce", 1)
        lt.set_piece_hashes(ct, tmp)
        out[name] = lt.bencode(ct.generate())
    return out


def metainfo_and_bencode(tmp):
    torrents = real_torrents(tmp)
    for name, data in torrents.items():
        write("metainfo", name, data)
    # A few refusals, one per family of check.
    for name in ["bad_path_dotdot", "duplicate_path", "piece_count_mismatch", "v2_only",
                 "bad_piece_length_not_power_of_two", "bencode_truncated"]:
        shutil.copy(os.path.join(HOSTILE, name + ".torrent"),
                    os.path.join(CORPUS, "metainfo", name + ".torrent"))
    # Non-canonical key order and an unknown key: the hash must follow the bytes.
    write("metainfo", "unsorted_keys.torrent",
          b"d4:infod4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa"
          b"6:lengthi5e7:x-extrai1ee8:announce3:urle")

    write("bencode", "torrent.bencode", torrents["mktorrent_single.torrent"])
    seeds = {
        "ints.bencode": b"li0ei-42ei18446744073709551615ei-9223372036854775807ee",
        "int_too_big.bencode": b"i18446744073709551616e",
        "int_leading_zero.bencode": b"li03ei-0ee",
        "strings.bencode": b"l0:4:spam03:abce",
        "dict.bencode": b"d1:ai1e1:bl1:xe1:cd1:dlelee",
        "dict_unsorted_dup.bencode": b"d1:bi2e1:ai1e1:bi3ee",
        "depth_64.bencode": b"l" * 64 + b"e" * 64,
        "depth_65.bencode": b"l" * 65 + b"e" * 65,
        "deep_unclosed.bencode": b"d1:a" + b"l" * 200,
        "huge_string_length.bencode": b"d4:info99999999999999:abce",
        "trailing.bencode": b"i1ei2e",
    }
    for name, data in seeds.items():
        write("bencode", name, data)


def magnet():
    h = "c9e15763f722f23e98a29decdfae341b98d53056"
    b32 = "ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMCW"
    seeds = {
        "hex.txt": f"magnet:?xt=urn:btih:{h}",
        "full.txt": f"magnet:?xt=urn:btih:{h}&dn=My+File%20%C3%A9&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce"
                    "&tr=udp%3A%2F%2F127.0.0.1%3A6969&x.pe=127.0.0.2%3A6881&x.pe=%5B%3A%3A1%5D%3A6881",
        "base32_lower.txt": f"MAGNET:?xt=urn:btih:{b32.lower()}&dn=",
        "numbered_topics.txt": f"magnet:?xt.1=urn:btih:{h}&xt.2=urn:btmh:1220{'ab' * 32}&tr.1=http://t/a",
        "conflict.txt": f"magnet:?xt.1=urn:btih:{h}&xt.2=urn:btih:{'0' * 40}",
        "v2_only.txt": f"magnet:?xt=urn:btmh:1220{'cd' * 32}",
        "bad_escape.txt": f"magnet:?xt=urn:btih:{h}&dn=%ff%zz&",
    }
    for name, text in seeds.items():
        write("magnet", name, text.encode())


def frame(msg_id=None, payload=b""):
    body = b"" if msg_id is None else bytes([msg_id]) + payload
    return struct.pack(">I", len(body)) + body


def wire():
    # Layout (see fuzz/src/wire.rs): read-cut seed, piece count (u16 BE), stream.
    hs = bytes([19]) + b"BitTorrent protocol" + bytes(8) + hashlib.sha1(b"seed").digest() + b"-ST0001-abcdefghijkl"
    session = (hs + frame(5, b"\xff\xfe") + frame(2) + frame(1) + frame(6, struct.pack(">III", 0, 0, 16384))
               + frame(7, struct.pack(">II", 0, 0) + b"x" * 64) + frame(4, struct.pack(">I", 14))
               + frame() + frame(8, struct.pack(">III", 0, 16384, 16384)) + frame(9, b"\x1a\xe1")
               + frame(20, b"d1:md11:ut_metadatai1eee"))
    seeds = {
        "session.bin": b"\x07\x00\x10" + session,
        "messages_only.bin": b"\x01\x00\x08" + frame(0) + frame(3) + frame(4, b"\x00\x00\x00\x07"),
        "huge_length_prefix.bin": b"\x02\x00\x10" + hs + b"\xff\xff\xff\xff\x07",
        "bad_have_length.bin": b"\x03\x00\x10" + frame(4, b"\x00\x00"),
        "short_piece.bin": b"\x04\x00\x10" + frame(7, b"\x00\x00\x00"),
        "truncated_frame.bin": b"\x05\x00\x10" + frame(5, b"\xff" * 8)[:7],
        "wrong_protocol.bin": b"\x06\x00\x10" + bytes([18]) + hs[1:] + frame(1),
    }
    for name, data in seeds.items():
        write("wire", name, data)


def http_tracker():
    ih = bytes(range(20))
    esc = "".join("%%%02x" % b for b in ih)
    compact = be({"interval": 1800, "min interval": 60, "complete": 2, "incomplete": 1,
                  "peers": bytes([127, 0, 0, 2, 0x1a, 0xe1]),
                  "peers6": bytes(15) + b"\x01\x1a\xe2"})
    seeds = {
        "announce_query.txt": (f"info_hash={esc}&peer_id=-TR3000-abcdefghijkl&port=51413&uploaded=0"
                               "&downloaded=0&left=1000&numwant=80&key=4a1b2c3d&compact=1"
                               "&supportcrypto=1&event=started&ip=::1").encode(),
        "announce_query_binary.txt": b"info_hash=%00%ff%25%26+%20" + b"a" * 14
                                     + b"&peer_id=-ST0001-abc%26%2B%2012345&port=1&left=0&no_peer_id=1",
        "scrape_query.txt": f"info_hash={esc}&info_hash={'%41' * 20}".encode(),
        "announce_response_compact.bencode": compact,
        "announce_response_dict.bencode": be({"interval": 900, "warning message": "slow down",
                                              "peers": [{"ip": "127.0.0.3", "port": 6881, "peer id": b"-ST0001-" + b"p" * 12},
                                                        {"ip": "::1", "port": 6882}]}),
        "failure.bencode": be({"failure reason": "unregistered torrent"}),
        "scrape_response.bencode": be({"files": {ih: {"complete": 1, "downloaded": 5, "incomplete": 2},
                                                 b"short": {"complete": 9}}}),
    }
    for name, data in seeds.items():
        write("http_tracker", name, data)


def udp_tracker():
    proto = 0x41727101980
    seeds = {
        "connect_request.bin": struct.pack(">QII", proto, 0, 7),
        "announce_request.bin": struct.pack(">QII", 0x1122334455667788, 1, 8) + bytes(range(20))
                                + b"-ST0001-abcdefghijkl" + struct.pack(">QQQIIIiH", 1, 2, 3, 2, 0x7f000002, 9, -1, 6881)
                                + b"\x02\x05/path",  # BEP 41 URL data option
        "scrape_request.bin": struct.pack(">QII", 0x1122334455667788, 2, 9) + bytes(40) + b"ragged",
        "connect_response.bin": struct.pack(">IIQ", 0, 7, 0x1122334455667788),
        "announce_response.bin": struct.pack(">IIIII", 1, 8, 1800, 1, 2) + bytes([127, 0, 0, 2, 0x1a, 0xe1]) * 3,
        "scrape_response.bin": struct.pack(">II", 2, 9) + struct.pack(">III", 1, 2, 3) * 2,
        "error_response.bin": struct.pack(">II", 3, 10) + b"unknown connection id \xff",
    }
    for name, data in seeds.items():
        write("udp_tracker", name, data)


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        metainfo_and_bencode(tmp)
    magnet()
    wire()
    http_tracker()
    udp_tracker()
    for target in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, target)
        sizes = [os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)]
        print(f"{target}: {len(sizes)} files, {sum(sizes)} bytes")


if __name__ == "__main__":
    main()
