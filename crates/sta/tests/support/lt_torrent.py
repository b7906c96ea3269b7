#!/usr/bin/python3
"""libtorrent (python3-libtorrent 2.0.8) side of the metainfo interop tests.

  lt_torrent.py info FILE.torrent          -> JSON: v1 info-hash, name, size, files
  lt_torrent.py create SRC OUT [v1|hybrid] -> makes a torrent of SRC with libtorrent
"""
import json, os, sys
import libtorrent as lt

def info(path):
    ti = lt.torrent_info(path)
    fs = ti.files()
    files = []
    for i in range(fs.num_files()):
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            continue
        files.append({"path": fs.file_path(i).replace(os.sep, "/"), "length": fs.file_size(i)})
    print(json.dumps({
        "info_hash": str(ti.info_hashes().v1),
        "name": ti.name(),
        "total_length": sum(f["length"] for f in files),
        "files": files,
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
    }))

def create(src, out, kind):
    fs = lt.file_storage()
    lt.add_files(fs, src)
    flags = lt.create_torrent.v1_only if kind == "v1" else 0
    ct = lt.create_torrent(fs, 16384, flags=flags)
    ct.add_tracker("http://127.0.0.1:6969/announce")
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(src)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))

if __name__ == "__main__":
    if sys.argv[1] == "info":
        info(sys.argv[2])
    else:
        create(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "hybrid")
