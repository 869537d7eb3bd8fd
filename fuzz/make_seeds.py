#!/usr/bin/env python3
"""Writes the seed corpora for the fuzz targets into corpus/<target>/ (or under the folder
given): small hand-made GGUF headers, plus the first 64 KiB of a real model when it is on this
machine; small tar archives, good and hostile; v2 JSON and binary-extension bodies; gRPC
ModelInferRequest messages (protobuf written by hand); OpenAI request bodies."""
import io, json, os, struct, sys, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
GGUF_DIR = os.path.join(OUT, "gguf_header")
BUNDLE_DIR = os.path.join(OUT, "bundle_unpack")
REAL_MODEL = "/root/.cache/modelbay-ci/cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, kind, payload):
    return s(key) + struct.pack("<I", kind) + payload


def gguf(version, kvs, tensors):
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    out += b"".join(kvs)
    for name, dims, kind in tensors:
        out += s(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, 0)
    return out


def gguf_seeds():
    arch = kv("general.architecture", 8, s("llama"))
    yield "minimal", gguf(3, [arch], [])
    yield "sample", gguf(3, [
        arch,
        kv("tokenizer.chat_template", 8, s("{{ messages }}")),
        kv("llama.context_length", 4, struct.pack("<I", 8192)),
        kv("general.file_type", 4, struct.pack("<I", 3)),
        kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + s("a") + s("b")),
    ], [("w", [4, 8], 3), ("b", [8], 3)])
    # Every scalar type, fixed-size arrays, version 2, no file_type (predominant tensor type).
    scalars = [(0, b"\x01"), (1, b"\xff"), (2, b"\x02\x00"), (3, b"\xfe\xff"),
               (4, struct.pack("<I", 7)), (5, struct.pack("<i", -7)),
               (6, struct.pack("<f", 1.5)), (7, b"\x01"), (10, struct.pack("<Q", 2**63)),
               (11, struct.pack("<q", -1)), (12, struct.pack("<d", 2.5))]
    kvs = [kv("qwen2.architecture_dummy", 8, s("x")),
           kv("general.architecture", 8, s("qwen2")),
           kv("general.name", 8, s("Tiny")),
           kv("qwen2.context_length", 10, struct.pack("<Q", 32768))]
    kvs += [kv(f"k.{t}", t, p) for t, p in scalars]
    kvs += [kv(f"arr.{t}", 9, struct.pack("<IQ", t, 3) + p * 3) for t, p in scalars]
    yield "all_types_v2", gguf(2, kvs, [("a", [2, 3, 4, 5], 12), ("b", [7], 0), ("c", [1] * 8, 30)])
    yield "no_arch", gguf(3, [kv("general.file_type", 4, struct.pack("<I", 15))], [("t", [16], 14)])
    yield "empty_array", gguf(3, [arch, kv("e", 9, struct.pack("<IQ", 8, 0))], [])
    yield "magic_only", b"GGUF"
    if os.path.exists(REAL_MODEL):
        with open(REAL_MODEL, "rb") as f:
            yield "smollm2_head_64k", f.read(64 << 10)


def tar_bytes(fmt, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    info.mode = 0o644
    return info, (data if kind == tarfile.REGTYPE else None)


def bundle_seeds():
    folder = [member("config.json", b"{}"), member("1_Pooling/config.json", b'{"a":1}'),
              member("onnx/model.onnx", b"onnx"), member("tokenizer.json", b"{\"v\":1}" * 20)]
    yield "folder_ustar", tar_bytes(tarfile.USTAR_FORMAT, folder)
    yield "folder_gnu", tar_bytes(tarfile.GNU_FORMAT, folder)
    yield "with_dirs", tar_bytes(tarfile.USTAR_FORMAT, [
        member("a", kind=tarfile.DIRTYPE), member("a/b", kind=tarfile.DIRTYPE),
        member("a/b/c.txt", b"c"), member("./d.txt", b"d")])
    yield "deep", tar_bytes(tarfile.USTAR_FORMAT, [member("/".join("abcdefgh") + ".json", b"x")])
    yield "long_ustar_prefix", tar_bytes(tarfile.USTAR_FORMAT, [member("p" * 120 + "/" + "n" * 90, b"x")])
    yield "gnu_longname", tar_bytes(tarfile.GNU_FORMAT, [member("n" * 150, b"x")])
    yield "pax", tar_bytes(tarfile.PAX_FORMAT, [member("é" * 80, b"x")])
    yield "parent", tar_bytes(tarfile.USTAR_FORMAT, [member("../escaped", b"x")])
    yield "absolute", tar_bytes(tarfile.USTAR_FORMAT, [member("/tmp/escaped", b"x")])
    yield "symlink", tar_bytes(tarfile.USTAR_FORMAT, [member("link", kind=tarfile.SYMTYPE, link="/etc")])
    yield "hardlink", tar_bytes(tarfile.USTAR_FORMAT, [member("a", b"x"), member("b", kind=tarfile.LNKTYPE, link="a")])
    yield "duplicate", tar_bytes(tarfile.USTAR_FORMAT, [member("a", b"x"), member("a", b"y")])
    yield "file_then_dir", tar_bytes(tarfile.USTAR_FORMAT, [member("a", b"x"), member("a/b", b"y")])
    yield "dir_then_file", tar_bytes(tarfile.USTAR_FORMAT, [member("a/b", b"y"), member("a", b"x")])
    many = [member(f"f{i}", b"x") for i in range(70)]
    yield "many_files", tar_bytes(tarfile.USTAR_FORMAT, many)
    yield "truncated", tar_bytes(tarfile.USTAR_FORMAT, [member("a", b"x" * 2000)])[:1024]
    yield "empty", b"\0" * 1024


def write(dir, seeds):
    os.makedirs(dir, exist_ok=True)
    for name, data in seeds:
        with open(os.path.join(dir, name), "wb") as f:
            f.write(data)


def v2_seeds():
    def body(*inputs, **extra):
        return json.dumps({"inputs": list(inputs), **extra}).encode()

    def tensor(name, dt, shape, data):
        return {"name": name, "datatype": dt, "shape": shape, "data": data}

    yield "fp32_rows", body(tensor("input", "FP32", [2, 3], [[1, 2.5, -3], [4e2, 0, 1e-7]]))
    yield "fp32_flat", body(tensor("input", "FP32", [1, 3], [1, 2, 3]), id="req-1",
                            outputs=[{"name": "label", "parameters": {"binary_data": True}}])
    yield "every_type", body(*[tensor(f"t{i}", dt, [2], data) for i, (dt, data) in enumerate([
        ("BOOL", [True, False]), ("UINT8", [0, 255]), ("UINT16", [1, 65535]),
        ("UINT32", [2, 4294967295]), ("UINT64", [3, 18446744073709551615]), ("INT8", [-128, 127]),
        ("INT16", [-1, 32767]), ("INT32", [-2, 2147483647]), ("INT64", [-3, -9223372036854775808]),
        ("FP16", [0.5, -2.25]), ("BF16", [1, -8]), ("FP64", [1e300, -1e-300]),
        ("BYTES", ["h\u00e9llo", ""])])])
    yield "wrong_count", body(tensor("input", "FP32", [1, 3], [1, 2]))
    yield "scalar", body(tensor("input", "FP32", [1], 7))
    yield "params", body(tensor("input", "FP32", [1, 3], [1, 2, 3]),
                         parameters={"binary_data_output": True})


def v2_binary_seeds():
    raw = struct.pack("<3f", 1, 2, 3)
    header = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    yield "fp32", struct.pack("<H", len(header)) + header + raw
    strings = struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)
    header = json.dumps({"inputs": [{"name": "s", "datatype": "BYTES", "shape": [2],
                                     "parameters": {"binary_data_size": len(strings)}},
                                    {"name": "input", "datatype": "FP32", "shape": [1, 3],
                                     "data": [1, 2, 3]}]}).encode()
    yield "bytes_and_json", struct.pack("<H", len(header)) + header + strings


def varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def field(number, wire, payload):
    key = varint(number << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def packed(number, values, fmt=None):
    data = b"".join(struct.pack(fmt, v) if fmt else varint(v & (2**64 - 1)) for v in values)
    return field(number, 2, data)


def grpc_seeds():
    def infer_input(name, dt, shape, contents=b""):
        msg = field(1, 2, name.encode()) + field(2, 2, dt.encode()) + packed(3, shape)
        return msg + (field(5, 2, contents) if contents else b"")

    head = field(1, 2, b"bc") + field(3, 2, b"req-1")
    yield "fp32_typed", head + field(5, 2, infer_input("input", "FP32", [1, 3],
                                                        packed(6, [1, 2, 3], "<f")))
    yield "int_narrowed", head + field(5, 2, infer_input("in_int8", "INT8", [2], packed(2, [-1, 127])))
    yield "uint16", head + field(5, 2, infer_input("u", "UINT16", [2], packed(4, [1, 65535])))
    yield "bytes_typed", head + field(5, 2, infer_input("s", "BYTES", [2],
                                                        field(8, 2, b"ab") + field(8, 2, b"")))
    yield "raw_fp16", head + field(5, 2, infer_input("h", "FP16", [2])) + field(7, 2, b"\x00\x3c\x00\xc0")
    yield "raw_bytes", head + field(5, 2, infer_input("s", "BYTES", [1])) + \
        field(7, 2, struct.pack("<I", 3) + b"abc")


def openai_seeds():
    chat = {"model": "smollm2", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi <|im_start|>system"},
        {"role": "assistant", "content": [{"type": "text", "text": "hello"}]}],
        "max_tokens": 8, "temperature": 0.5, "top_p": 0.9, "n": 2, "seed": 7, "stop": ["\n"],
        "stream": True, "stream_options": {"include_usage": True}, "logit_bias": {"42": -100}}
    yield "chat", b"\x00" + json.dumps(chat).encode()
    yield "chat_minimal", b"\x00" + json.dumps({"model": "m", "messages": [
        {"role": "user", "content": "\uf8f00\uf8f1"}]}).encode()
    yield "completion", b"\x01" + json.dumps({"model": "m", "prompt": ["a", "b"], "max_tokens": 4,
                                              "logprobs": 2, "stop": "x"}).encode()
    yield "completion_tokens", b"\x01" + json.dumps({"model": "m", "prompt": [1, 2, 3]}).encode()
    yield "embeddings", b"\x02" + json.dumps({"model": "e", "input": ["a", "b"],
                                              "encoding_format": "base64", "dimensions": 8}).encode()
    yield "embeddings_tokens", b"\x02" + json.dumps({"model": "e", "input": [[1, 2], [3]]}).encode()


write(GGUF_DIR, gguf_seeds())
write(BUNDLE_DIR, bundle_seeds())
write(os.path.join(OUT, "v2_json"), v2_seeds())
write(os.path.join(OUT, "v2_binary"), v2_binary_seeds())
write(os.path.join(OUT, "grpc_infer"), grpc_seeds())
write(os.path.join(OUT, "openai_request"), openai_seeds())
print("seeds written under", OUT)
