#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (scripts/fuzz.sh), made from ../shared/fixtures and ../shared/clip.

usage: make_seeds.py SHARED_DIR CORPUS_DIR

Writes CORPUS_DIR/<target>/seed-*: only bytes are read and written. Checkpoints are never unpickled
(the malicious ones are data to the fuzzer; pickle boundaries in our own legacy fixture are found with
pickletools.genops, which only walks opcodes). Existing files are kept, so a corpus grown by earlier
runs stays.
"""
import glob
import io
import json
import os
import pickletools
import struct
import sys
import zipfile
import zlib

shared, corpus = sys.argv[1], sys.argv[2]
fixtures = os.path.join(shared, "fixtures")
counts = {}


def put(target, name, data):
    folder = os.path.join(corpus, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as out:
        out.write(data)
    counts[target] = counts.get(target, 0) + 1


def read(path):
    with open(path, "rb") as f:
        return f.read()


def deep_json(depth):
    return b"[" * depth + b"]" * depth


# ---- pickle and zip ----------------------------------------------------------------------------
def data_pkl(path):
    """The bytes of a zip's *data.pkl record, or None (for a file that is not a readable zip)."""
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.filename.endswith("data.pkl"):
                    return z.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        pass
    return None


def legacy_pickles(data, count=5):
    """The first `count` pickles of a legacy torch.save file (magic, protocol, sys info, main, keys)."""
    stream = io.BytesIO(data)
    for _ in range(count):
        for _op, _arg, _pos in pickletools.genops(stream):
            pass
    return data[: stream.tell()]


def small_zip(pkl, prefix):
    """A stored zip as torch.save lays it out, with the pickle and a few short data records."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "/data.pkl", pkl)
        for key in ("0", "1", "2"):
            z.writestr(prefix + "/data/" + key, bytes(range(64)))
        z.writestr(prefix + "/byteorder", b"little")
        z.writestr(prefix + "/version", b"3\n")
    return out.getvalue()


def zip64(records):
    """A stored zip whose central directory and end record use zip64 (sizes and offsets as 0xFFFFFFFF)."""
    out = bytearray()
    central = bytearray()
    for name, data in records:
        name = name.encode()
        offset = len(out)
        crc = zlib.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0)
        out += name + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF)
        central += name + extra
    directory_offset = len(out)
    out += central
    zip64_end = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(records), len(records), len(central),
                       directory_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, zip64_end, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


for path in sorted(glob.glob(os.path.join(fixtures, "malicious", "*.ckpt"))):
    name = os.path.basename(path)
    data = read(path)
    put("fuzz_pickle", name, data)
    put("fuzz_checkpoint_zip", name, data)
    pkl = data_pkl(path)
    if pkl is not None:
        put("fuzz_pickle", name + ".data.pkl", pkl)

for path in sorted(glob.glob(os.path.join(fixtures, "tiny-sd1", "*.ckpt"))):
    name = os.path.basename(path)
    pkl = data_pkl(path)
    if pkl is not None:
        put("fuzz_pickle", name + ".data.pkl", pkl)
    else:
        put("fuzz_pickle", name + ".pickles", legacy_pickles(read(path)))

control = data_pkl(os.path.join(fixtures, "malicious", "control_valid_small.ckpt"))
if control is not None:  # the malicious set's one valid checkpoint, in Python's zip layout and as zip64
    put("fuzz_checkpoint_zip", "control.zip", small_zip(control, "archive"))
    put("fuzz_checkpoint_zip", "control.zip64", zip64([("archive/data.pkl", control), ("archive/data/0", bytes(64))]))

# ---- safetensors -------------------------------------------------------------------------------
def safetensors(header, blobs, pad=0):
    """header: name -> entry without data_offsets (plus __metadata__); blobs: name -> bytes."""
    out_header, data = {}, bytearray()
    for name, entry in header.items():
        if name == "__metadata__":
            out_header[name] = entry
            continue
        entry = dict(entry)
        entry["data_offsets"] = [len(data), len(data) + len(blobs[name])]
        data += blobs[name]
        out_header[name] = entry
    text = json.dumps(out_header, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(text)) + text + bytes(data)


def smallest_tensors(path, count):
    """The file's __metadata__ and its `count` smallest tensors, as a new, small file's parts."""
    data = read(path)
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    base = 8 + length
    tensors = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1] - header[k]["data_offsets"][0])
    kept = {}
    if "__metadata__" in header:
        kept["__metadata__"] = header["__metadata__"]
    blobs = {}
    for name in tensors[:count]:
        begin, end = header[name]["data_offsets"]
        kept[name] = {"dtype": header[name]["dtype"], "shape": header[name]["shape"]}
        blobs[name] = data[base + begin : base + end]
    return kept, blobs


st_inputs = [os.path.join(fixtures, "textual_inversion", "tiny-style.safetensors")]
for path in st_inputs:
    if os.path.exists(path):
        put("fuzz_safetensors", os.path.basename(path), read(path))
for rel in ("lora/tiny-sd1-lora.safetensors", "lora/tiny-sd1-lora.diffusers.safetensors",
            "tiny-fast/taesd/taesd_decoder.safetensors"):
    path = os.path.join(fixtures, rel)
    if os.path.exists(path):
        header, blobs = smallest_tensors(path, 4)
        put("fuzz_safetensors", os.path.basename(path) + ".small", safetensors(header, blobs))
        put("fuzz_safetensors", os.path.basename(path) + ".unaligned", safetensors(header, blobs, pad=3))
every_dtype = {}
every_blob = {}
for dtype, size in (("F64", 8), ("F32", 4), ("F16", 2), ("BF16", 2), ("I64", 8), ("I32", 4), ("I16", 2), ("I8", 1),
                    ("U8", 1), ("BOOL", 1)):
    every_dtype["t_" + dtype] = {"dtype": dtype, "shape": [2, 1]}
    every_blob["t_" + dtype] = bytes(2 * size)
every_dtype["empty"] = {"dtype": "F32", "shape": [0, 3]}
every_blob["empty"] = b""
every_dtype["__metadata__"] = {"format": "pt"}
put("fuzz_safetensors", "every-dtype", safetensors(every_dtype, every_blob))
# A deeply nested shape: an error message that dumps it must not recurse without bound.
deep = b'{"t":{"dtype":"F32","shape":' + deep_json(50000) + b',"data_offsets":[0,0]}}'
put("fuzz_safetensors", "deep-shape", struct.pack("<Q", len(deep)) + deep)

# ---- json configs --------------------------------------------------------------------------------
for path in sorted(set(glob.glob(os.path.join(fixtures, "**", "diffusers", "**", "*config.json"), recursive=True))):
    rel = os.path.relpath(path, fixtures).replace(os.sep, "_")
    if os.path.basename(path) in ("config.json", "scheduler_config.json"):
        put("fuzz_json_config", rel, read(path))
put("fuzz_json_config", "python-constants.json", b'{"beta_start": NaN, "norm_eps": Infinity, "x": -Infinity, "s": "NaN"}')
put("fuzz_json_config", "deep.json", deep_json(50000))
put("fuzz_json_config", "deep-field.json", b'{"block_out_channels": ' + deep_json(50000) + b', "trained_betas": ' +
    deep_json(50000) + b"}")

# ---- tokenizer -----------------------------------------------------------------------------------
clip = os.path.join(shared, "clip")
with open(os.path.join(clip, "vocab.json"), encoding="utf-8") as f:
    full_vocab = json.load(f)
with open(os.path.join(clip, "merges.txt"), encoding="utf-8") as f:
    merge_lines = f.read().split("\n")
merges = merge_lines[1:121]  # the version line, then the first 120 merges
by_id = sorted(full_vocab.items(), key=lambda item: item[1])
vocab = dict(by_id[: 512 + len(merges)])
vocab["<|startoftext|>"] = full_vocab["<|startoftext|>"]
vocab["<|endoftext|>"] = full_vocab["<|endoftext|>"]
vocab_text = json.dumps(vocab, ensure_ascii=False, separators=(",", ":")).encode()
merges_text = ("\n".join([merge_lines[0]] + merges) + "\n").encode()
put("fuzz_tokenizer", "plain", vocab_text + b"\0" + merges_text)
for model in ("tiny-sd1", "tiny-sd2v"):
    config = os.path.join(fixtures, model, "diffusers", "tokenizer", "tokenizer_config.json")
    if os.path.exists(config):
        put("fuzz_tokenizer", model, vocab_text + b"\0" + merges_text + b"\0" + read(config) + b"\0an astronaut!")
put("fuzz_tokenizer", "deep-vocab", b'{"a":' + deep_json(50000) + b"}\0" + merges_text)
added = {
    "model_max_length": 20,
    "pad_token": "!",
    "added_tokens_decoder": {
        "49406": {"content": "<|startoftext|>", "special": True},
        "49407": {"content": "<|endoftext|>", "special": True},
        "5": {"content": "ast", "single_word": True, "lstrip": True, "rstrip": True, "normalized": False},
        "60000": {"content": "<tok>", "rstrip": True},
    },
}
put("fuzz_tokenizer", "added-tokens", vocab_text + b"\0" + merges_text + b"\0" + json.dumps(added).encode() +
    b"\0<tok> a star, the ast of it \xc3\xa9 &amp; caf\xc3\xa9")

# ---- png ------------------------------------------------------------------------------------------
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png(width, height, bit_depth, color_type, interlace=False, extra=(), samples_per_pixel=None):
    """A PNG of a small gradient, filter 0 on every row; `extra` chunks go before IDAT."""
    channels = samples_per_pixel or {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    bits = channels * bit_depth

    def rows(w, h, x0=0, y0=0):
        out = bytearray()
        for y in range(h):
            line = 0
            for x in range(w):
                for c in range(channels):
                    value = ((x + x0) * 7 + (y + y0) * 13 + c * 5) % (1 << bit_depth)
                    line = (line << bit_depth) | value
            pad = (-(w * bits)) % 8
            line <<= pad
            out += b"\0" + line.to_bytes((w * bits + pad) // 8, "big")
        return out

    if interlace:
        raw = bytearray()
        for x0, y0, dx, dy in ADAM7:
            w = (width - x0 + dx - 1) // dx if width > x0 else 0
            h = (height - y0 + dy - 1) // dy if height > y0 else 0
            if w and h:
                raw += rows(w, h)
    else:
        raw = rows(width, height)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    body = b"".join(chunk(kind, data) for kind, data in extra)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + body + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b"")


texts = [(b"tEXt", b"parameters\0a red circle, Steps: 2"), (b"zTXt", b"Comment\0\0" + zlib.compress(b"caf\xe9")),
         (b"iTXt", b"Title\0\0\0en\0Titel\0" + "caf\u00e9 \u2603".encode())]
palette = bytes(range(48))
put("fuzz_png", "gray1.png", png(9, 3, 1, 0))
put("fuzz_png", "gray16.png", png(3, 2, 16, 0))
put("fuzz_png", "rgb8-text.png", png(4, 3, 8, 2, extra=texts))
put("fuzz_png", "rgba8-interlaced.png", png(9, 9, 8, 6, interlace=True))
put("fuzz_png", "graya8.png", png(3, 3, 8, 4))
put("fuzz_png", "rgb16-trns.png", png(2, 2, 16, 2, extra=[(b"tRNS", bytes(6))]))
put("fuzz_png", "palette4-trns.png", png(5, 2, 4, 3, extra=[(b"PLTE", palette), (b"tRNS", bytes([0, 128]))]))
pngs = sorted(glob.glob(os.path.join(fixtures, "**", "*.png"), recursive=True), key=os.path.getsize)
seen_sizes = set()
for path in pngs:
    size = os.path.getsize(path)
    if size > 16384 or size in seen_sizes or len(seen_sizes) >= 8:
        continue
    seen_sizes.add(size)
    put("fuzz_png", os.path.relpath(path, fixtures).replace(os.sep, "_"), read(path))

for target in sorted(counts):
    print(f"{target}: {counts[target]} seeds")
