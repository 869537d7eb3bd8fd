#!/usr/bin/env python3
"""Checks that NVIDIA's unmodified `tritonclient.http` works against modelbay.

Starts the real server binary on 127.0.0.1 port 0 with a temporary data directory, pushes the
fixture models through the management API, then uses tritonclient for health, metadata,
readiness and inference (binary tensor extension and JSON, every datatype, string inputs,
output selection, pinned versions) and compares with the fixtures' expected outputs. Also pushes
all-MiniLM-L6-v2 (a sentence-transformers folder, packed by `modelbay push`) and embeds text
through v2 (a BYTES input `text`), compared with the float64 reference embeddings.

Usage: tests/tritonclient_check.py [path/to/modelbay]
  (needs ORT_DYLIB_PATH, MODELBAY_MINILM_ONNX and MODELBAY_MINILM_REFERENCE)
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from modelbay_server import authorized, push, start_server

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
NUMPY = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}
MODELS = ["breast_cancer_lr", "breast_cancer_rf", "breast_cancer_mlp", "diabetes_gbr",
          "credit_default", "german_credit", "all_types_identity"]
checks = 0


def check(condition, message):
    global checks
    if not condition:
        raise AssertionError(message)
    checks += 1


def to_numpy(tensor):
    dtype = NUMPY[tensor["datatype"]]
    data = tensor["data"]
    if tensor["datatype"] == "BYTES":
        data = [s.encode("utf-8") for s in data]
    return np.array(data, dtype=dtype).reshape(tensor["shape"])


def assert_close(name, actual, expected):
    if expected.dtype == np.object_:
        # tritonclient gives bytes for binary BYTES outputs and str for JSON ones (as with Triton).
        text = lambda a: [x.decode("utf-8") if isinstance(x, bytes) else x for x in a.ravel().tolist()]
        check(text(actual) == text(expected), f"{name}: {actual} != {expected}")
    elif np.issubdtype(expected.dtype, np.floating):
        check(actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}")
        check(np.allclose(actual, expected, rtol=1e-5, atol=1e-5), f"{name}: {actual} != {expected}")
    else:
        check(actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}")
        check(np.array_equal(actual, expected), f"{name}: {actual} != {expected}")


def run(address):
    client = authorized(httpclient.InferenceServerClient(url=address))
    check(client.is_server_live(), "server live")
    check(client.is_server_ready(), "server ready")
    check("binary_tensor_data" in client.get_server_metadata()["extensions"], "extensions")

    for model in MODELS:
        name = model.replace("_", "-")
        fixture = json.loads((FIXTURES / f"{model}.expected.json").read_text())
        check(client.is_model_ready(name), f"{name} ready")
        check(client.is_model_ready(name, "1"), f"{name} v1 ready")
        meta = client.get_model_metadata(name)
        check([i["name"] for i in meta["inputs"]] == [t["name"] for t in fixture["inputs"]], f"{name} inputs")
        check(meta["versions"] == ["1"], f"{name} versions")

        for binary in (True, False):
            inputs = []
            for tensor in fixture["inputs"]:
                inp = httpclient.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
                inp.set_data_from_numpy(to_numpy(tensor), binary_data=binary)
                inputs.append(inp)
            outputs = [httpclient.InferRequestedOutput(t["name"], binary_data=binary) for t in fixture["outputs"]]
            result = client.infer(name, inputs, outputs=outputs, request_id=f"{name}-{binary}", model_version="1")
            check(result.get_response()["id"] == f"{name}-{binary}", "id echoed")
            for tensor in fixture["outputs"]:
                assert_close(f"{name} {tensor['name']} binary={binary}", result.as_numpy(tensor["name"]), to_numpy(tensor))

        # No outputs named: tritonclient asks for all of them, in binary.
        result = client.infer(name, inputs)
        for tensor in fixture["outputs"]:
            assert_close(f"{name} {tensor['name']} default outputs", result.as_numpy(tensor["name"]), to_numpy(tensor))

    # Model configuration (what perf_analyzer reads) and compressed requests.
    config = client.get_model_config("breast-cancer-lr")
    check(config["input"][0]["data_type"] == "TYPE_FP32" and config["max_batch_size"] == 0, f"config: {config}")
    fixture = json.loads((FIXTURES / "breast_cancer_lr.expected.json").read_text())
    inp = httpclient.InferInput("input", fixture["inputs"][0]["shape"], "FP32")
    inp.set_data_from_numpy(to_numpy(fixture["inputs"][0]))
    for algorithm in ("gzip", "deflate"):
        result = client.infer("breast-cancer-lr", [inp], request_compression_algorithm=algorithm)
        assert_close(f"{algorithm} request", result.as_numpy("label"), to_numpy(fixture["outputs"][0]))

    # Output selection.
    fixture = json.loads((FIXTURES / "breast_cancer_lr.expected.json").read_text())
    inp = httpclient.InferInput("input", fixture["inputs"][0]["shape"], "FP32")
    inp.set_data_from_numpy(to_numpy(fixture["inputs"][0]))
    result = client.infer("breast-cancer-lr", [inp], outputs=[httpclient.InferRequestedOutput("label")])
    check(result.as_numpy("probabilities") is None, "only the requested output comes back")
    assert_close("selected label", result.as_numpy("label"), to_numpy(fixture["outputs"][0]))

    # Errors arrive as InferenceServerException with the server's message.
    for call, needle in [
        (lambda: client.infer("no-such-model", [inp]), "not found"),
        (lambda: client.infer("breast-cancer-lr", [inp], model_version="9"), "no version 9"),
        (lambda: client.get_model_metadata("no-such-model"), "not found"),
    ]:
        try:
            call()
            check(False, f"expected an error containing {needle!r}")
        except InferenceServerException as e:
            check(needle in str(e), f"{e} should contain {needle!r}")
    wrong = httpclient.InferInput("input", [1, 29], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 29), dtype=np.float32))
    try:
        client.infer("breast-cancer-lr", [wrong])
        check(False, "a wrong shape must fail")
    except InferenceServerException as e:
        check("has shape [1, 29]" in str(e), str(e))
    check(not client.is_model_ready("no-such-model"), "unknown model is not ready")

    # An alias works wherever tritonclient takes a model version.
    request = urllib.request.Request(
        f"http://{address}/api/v1/models/breast-cancer-lr/aliases/production",
        data=json.dumps({"version": 1}).encode(), method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        check(response.status == 200, "promote")
    result = client.infer("breast-cancer-lr", [inp], model_version="production")
    check(result.get_response()["model_version"] == "1", "served through the alias")
    check(client.is_model_ready("breast-cancer-lr", "production"), "alias ready")

    # Triton's model repository extension.
    index = {(m["name"], m["version"]): m["state"] for m in client.get_model_repository_index()}
    check(index[("breast-cancer-lr", "1")] == "READY", f"index: {index}")
    client.unload_model("breast-cancer-lr")
    index = {(m["name"], m["version"]): m["state"] for m in client.get_model_repository_index()}
    check(index[("breast-cancer-lr", "1")] == "UNAVAILABLE", f"index after unload: {index}")
    client.load_model("breast-cancer-lr")
    index = {(m["name"], m["version"]): m["state"] for m in client.get_model_repository_index()}
    check(index[("breast-cancer-lr", "1")] == "READY", f"index after load: {index}")


def embeddings(binary, address):
    """An embedding model through v2: strings in, one normalised vector per string out."""
    folder = os.environ.get("MODELBAY_MINILM_ONNX", str(ROOT / ".cache/models/all-MiniLM-L6-v2-onnx"))
    reference = json.loads(Path(os.environ.get(
        "MODELBAY_MINILM_REFERENCE", str(ROOT / ".cache/models/minilm-reference.json"))).read_text())
    subprocess.run([binary, "push", "minilm", folder, "--server", f"http://{address}"],
                   check=True, capture_output=True)
    client = authorized(httpclient.InferenceServerClient(address))
    metadata = client.get_model_metadata("minilm")
    check(metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}], metadata)
    check(metadata["outputs"][0]["shape"] == [-1, 384], metadata)
    sentences = reference["sentences"][:8]
    for binary_data in (True, False):
        text = httpclient.InferInput("text", [len(sentences)], "BYTES")
        text.set_data_from_numpy(np.array([s.encode() for s in sentences], dtype=np.object_),
                                 binary_data=binary_data)
        output = httpclient.InferRequestedOutput("embedding", binary_data=binary_data)
        vectors = client.infer("minilm", [text], outputs=[output]).as_numpy("embedding")
        check(vectors.shape == (len(sentences), 384) and vectors.dtype == np.float32, vectors.shape)
        expected = np.array(reference["embeddings"][:len(sentences)])
        cosines = (vectors * expected).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(expected, axis=1)
        check(cosines.min() >= 0.9999, f"cosines {cosines}")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/modelbay")
    with tempfile.TemporaryDirectory() as data_dir:
        proc, address = start_server(binary, data_dir)
        try:
            for model in MODELS:
                push(address, model.replace("_", "-"), FIXTURES / f"{model}.onnx")
            run(address)
            embeddings(binary, address)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"tritonclient.http: {checks} checks passed")


if __name__ == "__main__":
    main()
