#!/usr/bin/env python3
"""Writes the hostile-torrent corpus next to this script. Each file name is
the error kind sta must report (see crates/sta-proto/tests/hostile.rs).
Run it again after changing a case; the .torrent files are committed."""
import os

def be(v):
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

def single(**over):
    info = {"name": "f.bin", "piece length": 16384, "length": 20000, "pieces": b"a" * 40}
    info.update(over)
    return {"announce": "http://127.0.0.1:6969/announce", "info": {k: v for k, v in info.items() if v is not None}}

def multi(files, **over):
    total = sum(f["length"] for f in files if isinstance(f.get("length"), int) and f["length"] > 0)
    n = min(max(1, -(-total // 16384)), 4)  # a few hashes are enough to reach the check under test
    info = {"name": "top", "piece length": 16384, "files": files, "pieces": b"a" * (20 * n)}
    info.update(over)
    return {"info": info}

cases = {
    "bencode_truncated": be(single())[:-7],
    "bencode_invalid": b"d4:infoX3:abce",
    "bencode_too_deep": b"l" * 100000 + b"e" * 100000,
    "bencode_huge_string_length": b"d4:info99999999999999:abc" + b"e",
    "bencode_trailing_garbage": be(single()) + b"garbage",
    "missing_info": be({"announce": "http://x/"}),
    "missing_name": be(single(name=None)),
    "wrong_type_info": be({"info": [1, 2]}),
    "pieces_not_multiple_of_20": be(single(pieces=b"a" * 39)),
    "piece_count_mismatch": be(single(pieces=b"a" * 60)),
    "bad_length_negative": be(single(length=-5)),
    "bad_length_overflowing": be(single(length=2**63 - 1)),
    "bad_length_files_sum_overflows": be(multi([{"length": 2**49, "path": ["a"]}, {"length": 2**49, "path": ["b"]}, {"length": 2**49, "path": ["c"]}])),
    "empty_total_zero": be(single(length=0, pieces=b"")),
    "bad_piece_length_zero": be(single(**{"piece length": 0})),
    "bad_piece_length_not_power_of_two": be(single(**{"piece length": 20000})),
    "bad_piece_length_huge": be(single(**{"piece length": 2**31})),
    "bad_path_dotdot": be(multi([{"length": 10, "path": ["..", "..", "etc", "passwd"]}])),
    "bad_path_absolute": be(multi([{"length": 10, "path": ["/etc/passwd"]}])),
    "bad_path_empty_component": be(multi([{"length": 10, "path": ["a", "", "b"]}])),
    "bad_path_empty_list": be(multi([{"length": 10, "path": []}])),
    "bad_path_nul": be(multi([{"length": 10, "path": ["a\0b"]}])),
    "bad_path_name_dotdot": be(single(name="..")),
    "bad_path_name_slash": be(single(name="../../x")),
    "duplicate_path": be(multi([{"length": 10, "path": ["a"]}, {"length": 10, "path": ["a"]}])),
    "duplicate_path_file_and_folder": be(multi([{"length": 10, "path": ["a"]}, {"length": 10, "path": ["a", "b"]}])),
    # 50,000 components in 150 KB: a per-prefix duplicate check would copy
    # gigabytes; refused on the component count before any copy.
    "path_too_deep": be(multi([{"length": 10, "path": ["a"] * 50000}])),
    # 20 legal 255-byte components: over PATH_MAX as a whole.
    "path_too_long": be(multi([{"length": 10, "path": ["x" * 255] * 20}])),
    "no_files": be(multi([])),
    "ambiguous_length_and_files": be(multi([{"length": 10, "path": ["a"]}], length=10)),
    "v2_only": be({"info": {"name": "x", "piece length": 16384, "meta version": 2, "file tree": {"x": {"": {"length": 5, "pieces root": b"r" * 32}}}}}),
}

here = os.path.dirname(os.path.abspath(__file__))
for name, data in cases.items():
    with open(os.path.join(here, name + ".torrent"), "wb") as f:
        f.write(data)
print(f"wrote {len(cases)} hostile torrents")
