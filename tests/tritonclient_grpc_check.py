#!/usr/bin/env python3
"""Checks that NVIDIA's unmodified `tritonclient.grpc` works against modelbay's gRPC server.

Starts the real server binary on 127.0.0.1 port 0 (HTTP and gRPC) with a temporary data
directory, pushes the fixture models through the management API, then uses tritonclient over
gRPC for health, server and model metadata (compared with the HTTP metadata), configuration,
readiness, inference of every fixture (raw tensor contents, every datatype including FP16, BF16
and BYTES, output selection, pinned versions and aliases), bidirectional streaming, the model
repository extension (index, unload, load), inference statistics and error status codes.

Usage: tests/tritonclient_grpc_check.py [path/to/modelbay]
  (needs ORT_DYLIB_PATH)
"""
import json
import queue
import sys
import tempfile
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from modelbay_server import authorized, push, start_server

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
# tritonclient maps BF16 to ml_dtypes.bfloat16 (numpy has no bfloat16 of its own), so the BF16
# fixture goes through `set_data_from_numpy` and `as_numpy` like the others.
MODELS = ["breast_cancer_lr", "breast_cancer_rf", "breast_cancer_mlp", "diabetes_gbr",
          "credit_default", "german_credit", "all_types_identity", "bf16_identity"]
STATS_MODEL = "stats-probe"
checks = 0


def check(condition, message):
    global checks
    if not condition:
        raise AssertionError(message)
    checks += 1


def fixture(model):
    return json.loads((FIXTURES / f"{model}.expected.json").read_text())


def to_numpy(tensor):
    data = tensor["data"]
    if tensor["datatype"] == "BYTES":
        data = [s.encode("utf-8") for s in data]
    return np.array(data, dtype=triton_to_np_dtype(tensor["datatype"])).reshape(tensor["shape"])


def inputs_of(tensors):
    """tritonclient inputs for a fixture's tensors, in raw contents (set_data_from_numpy)."""
    inputs = []
    for tensor in tensors:
        inp = grpcclient.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        inp.set_data_from_numpy(to_numpy(tensor))
        inputs.append(inp)
    return inputs


def assert_close(name, actual, expected):
    check(actual is not None, f"{name}: missing")
    check(actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}")
    if expected.dtype == np.object_:
        text = lambda a: [x.decode("utf-8") if isinstance(x, bytes) else x for x in a.ravel().tolist()]
        check(text(actual) == text(expected), f"{name}: {actual} != {expected}")
    elif np.issubdtype(expected.dtype, np.floating):
        check(actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}")
        check(np.allclose(actual, expected, rtol=1e-5, atol=1e-5), f"{name}: {actual} != {expected}")
    else:
        # Integers, BOOL and BF16 (exact values in bfloat16, so compared exactly).
        check(actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}")
        check(np.array_equal(actual, expected), f"{name}: {actual} != {expected}")


def assert_outputs(name, result, tensors):
    for tensor in tensors:
        assert_close(f"{name} {tensor['name']}", result.as_numpy(tensor["name"]), to_numpy(tensor))


def expect_error(call, status, needle):
    """`call` must raise InferenceServerException with gRPC `status` and `needle` in its message."""
    try:
        call()
    except InferenceServerException as e:
        check(e.status() == str(status), f"{e}: status {e.status()} != {status}")
        check(needle in e.message(), f"{e} should contain {needle!r}")
        return
    check(False, f"expected {status} containing {needle!r}")


def http_get(address, path):
    with urllib.request.urlopen(f"http://{address}{path}") as response:
        return json.loads(response.read())


def health_and_metadata(client, address):
    check(client.is_server_live(), "server live")
    check(client.is_server_ready(), "server ready")
    meta = client.get_server_metadata()
    check(meta.name == "modelbay", f"server name: {meta}")
    check(meta.version != "", f"server version: {meta}")
    check("binary_tensor_data" in meta.extensions and "model_repository" in meta.extensions,
          f"extensions: {meta.extensions}")

    for model in MODELS:
        name = model.replace("_", "-")
        check(client.is_model_ready(name), f"{name} ready")
        check(client.is_model_ready(name, "1"), f"{name} v1 ready")
        http = http_get(address, f"/v2/models/{name}")
        meta = client.get_model_metadata(name)
        check(meta.name == name and list(meta.versions) == ["1"], f"{name} metadata: {meta}")
        check(meta.platform == http["platform"], f"{name} platform {meta.platform} != {http['platform']}")
        for kind in ("inputs", "outputs"):
            ours = [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in getattr(meta, kind)]
            check(ours == http[kind], f"{name} {kind}: gRPC {ours} != HTTP {http[kind]}")

        config = client.get_model_config(name).config
        check(config.name == name and config.max_batch_size == 0, f"{name} config: {config}")
        for kind, field in (("inputs", "input"), ("outputs", "output")):
            ours = [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in getattr(config, field)]
            theirs = [(t["name"], "TYPE_STRING" if t["datatype"] == "BYTES" else f"TYPE_{t['datatype']}", t["shape"])
                      for t in http[kind]]
            check(ours == theirs, f"{name} config {field}: {ours} != {theirs}")

    # As Triton: an unknown model is not ready (no error).
    check(client.is_model_ready("no-such-model") is False, "unknown model not ready")
    expect_error(lambda: client.get_model_metadata("no-such-model"), grpc.StatusCode.NOT_FOUND, "not found")
    expect_error(lambda: client.get_model_config("no-such-model"), grpc.StatusCode.NOT_FOUND, "not found")


def inference(client):
    for model in MODELS:
        name = model.replace("_", "-")
        data = fixture(model)
        inputs = inputs_of(data["inputs"])
        outputs = [grpcclient.InferRequestedOutput(t["name"]) for t in data["outputs"]]
        result = client.infer(name, inputs, outputs=outputs, request_id=f"{name}-1", model_version="1")
        response = result.get_response()
        check(response.id == f"{name}-1", f"id echoed: {response.id!r}")
        check(response.model_name == name and response.model_version == "1", f"{name}: {response.model_name} v{response.model_version}")
        assert_outputs(f"{name} v1", result, data["outputs"])
        # No outputs named: every output comes back.
        result = client.infer(name, inputs)
        check(len(result.get_response().outputs) == len(data["outputs"]), f"{name} default outputs")
        assert_outputs(f"{name} default outputs", result, data["outputs"])
        # Compressed requests, as tritonclient sends them when asked.
        for algorithm in ("gzip", "deflate"):
            result = client.infer(name, inputs, compression_algorithm=algorithm)
            assert_outputs(f"{name} {algorithm}", result, data["outputs"])

    # Output selection.
    data = fixture("breast_cancer_lr")
    inputs = inputs_of(data["inputs"])
    result = client.infer("breast-cancer-lr", inputs, outputs=[grpcclient.InferRequestedOutput("label")])
    check([o.name for o in result.get_response().outputs] == ["label"], "only the requested output comes back")
    check(result.as_numpy("probabilities") is None, "no probabilities")
    assert_close("selected label", result.as_numpy("label"), to_numpy(data["outputs"][0]))


def alias(client, address):
    """An alias works wherever tritonclient takes a model version."""
    request = urllib.request.Request(
        f"http://{address}/api/v1/models/breast-cancer-lr/aliases/production",
        data=json.dumps({"version": 1}).encode(), method="PUT", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        check(response.status == 200, "promote")
    data = fixture("breast_cancer_lr")
    result = client.infer("breast-cancer-lr", inputs_of(data["inputs"]), model_version="production")
    check(result.get_response().model_version == "1", "served through the alias")
    assert_outputs("through the alias", result, data["outputs"])
    check(client.is_model_ready("breast-cancer-lr", "production"), "alias ready")
    meta = client.get_model_metadata("breast-cancer-lr", "production")
    check(list(meta.versions) == ["1"], f"alias metadata: {meta}")


def streaming(client):
    """Eight requests on one stream, one to an unknown model: seven results matched by id, one
    error, answered in the requests' order."""
    answers = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    sent = []
    try:
        for i in range(8):
            if i == 3:
                data = fixture("breast_cancer_lr")
                client.async_stream_infer("no-such-model", inputs_of(data["inputs"]), request_id="bad")
                sent.append(("bad", None))
                continue
            model = MODELS[i % len(MODELS)]
            request_id = f"stream-{i}"
            client.async_stream_infer(model.replace("_", "-"), inputs_of(fixture(model)["inputs"]),
                                      request_id=request_id)
            sent.append((request_id, model))
    finally:
        client.stop_stream()  # waits for every answer
    received = [answers.get_nowait() for _ in range(answers.qsize())]
    check(len(received) == len(sent), f"{len(received)} answers for {len(sent)} requests")
    good = {r.get_response().id: r for r, e in received if e is None}
    failed = [e for r, e in received if e is not None]
    check(sorted(good) == sorted(i for i, m in sent if m), f"ids: {sorted(good)}")
    for request_id, model in sent:
        if model:
            assert_outputs(f"stream {request_id}", good[request_id], fixture(model)["outputs"])
    check(len(failed) == 1 and "not found" in failed[0].message() and "no-such-model" in failed[0].message(),
          f"stream errors: {failed}")
    order = ["bad" if e is not None else r.get_response().id for r, e in received]
    check(order == [i for i, _ in sent], f"stream order: {order}")


def errors(client):
    data = fixture("breast_cancer_lr")
    inputs = inputs_of(data["inputs"])
    wrong = grpcclient.InferInput("input", [1, 29], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 29), dtype=np.float32))
    expect_error(lambda: client.infer("breast-cancer-lr", [wrong]), grpc.StatusCode.INVALID_ARGUMENT, "has shape [1, 29]")
    ints = grpcclient.InferInput("input", data["inputs"][0]["shape"], "INT32")
    ints.set_data_from_numpy(np.zeros(data["inputs"][0]["shape"], dtype=np.int32))
    expect_error(lambda: client.infer("breast-cancer-lr", [ints]), grpc.StatusCode.INVALID_ARGUMENT, "INT32")
    expect_error(lambda: client.infer("no-such-model", inputs), grpc.StatusCode.NOT_FOUND, "not found")
    expect_error(lambda: client.infer("breast-cancer-lr", inputs, model_version="9"),
                 grpc.StatusCode.NOT_FOUND, "no version 9")


def repository(client):
    """Triton's model repository extension: index, unload, load."""
    def state():
        return {(m.name, m.version): m.state for m in client.get_model_repository_index().models}

    index = state()
    check(all(index.get((m.replace("_", "-"), "1")) == "READY" for m in MODELS), f"index: {index}")
    client.unload_model("breast-cancer-lr")
    check(state()[("breast-cancer-lr", "1")] == "UNAVAILABLE", f"index after unload: {state()}")
    client.load_model("breast-cancer-lr")
    check(state()[("breast-cancer-lr", "1")] == "READY", f"index after load: {state()}")
    data = fixture("breast_cancer_lr")
    assert_outputs("after load", client.infer("breast-cancer-lr", inputs_of(data["inputs"])), data["outputs"])
    # Unlike Triton, an unloaded model is loaded again by the next request that needs it.
    client.unload_model("breast-cancer-lr")
    check(state()[("breast-cancer-lr", "1")] == "UNAVAILABLE", f"index after unload: {state()}")
    assert_outputs("after unload", client.infer("breast-cancer-lr", inputs_of(data["inputs"])), data["outputs"])
    check(state()[("breast-cancer-lr", "1")] == "READY", f"index after a request: {state()}")
    expect_error(lambda: client.load_model("no-such-model"), grpc.StatusCode.NOT_FOUND, "not found")


def statistics(client):
    """A model that only this function infers on: N successes, one failure."""
    data = fixture("diabetes_gbr")
    inputs = inputs_of(data["inputs"])
    rows = data["inputs"][0]["shape"][0]
    n = 6
    for _ in range(n):
        client.infer(STATS_MODEL, inputs)
    wrong = grpcclient.InferInput("input", [1, 9], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 9), dtype=np.float32))
    expect_error(lambda: client.infer(STATS_MODEL, [wrong]), grpc.StatusCode.INVALID_ARGUMENT, "has shape [1, 9]")

    stats = client.get_inference_statistics(STATS_MODEL).model_stats
    check([(s.name, s.version) for s in stats] == [(STATS_MODEL, "1")], f"statistics: {stats}")
    s = stats[0]
    check(s.inference_stats.success.count == n, f"success count {s.inference_stats.success.count} != {n}")
    check(s.inference_stats.success.ns > 0, f"success ns: {s.inference_stats.success}")
    check(s.inference_stats.fail.count == 1, f"fail count: {s.inference_stats.fail}")
    check(s.inference_count == n * rows, f"inference_count {s.inference_count} != {n * rows}")
    check(s.execution_count == n, f"execution_count {s.execution_count} != {n}")
    check(s.inference_stats.compute_infer.count == n, f"compute_infer: {s.inference_stats.compute_infer}")
    everyone = {(m.name, m.version) for m in client.get_inference_statistics().model_stats}
    check((STATS_MODEL, "1") in everyone and ("breast-cancer-lr", "1") in everyone, f"all statistics: {everyone}")
    check(client.get_inference_statistics(STATS_MODEL, "1").model_stats[0].inference_stats.success.count == n,
          "statistics of one version")
    expect_error(lambda: client.get_inference_statistics("no-such-model"), grpc.StatusCode.NOT_FOUND, "not found")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/modelbay")
    with tempfile.TemporaryDirectory() as data_dir:
        proc, address = start_server(binary, data_dir)
        try:
            check(proc.grpc_address is not None, "the server printed its gRPC address")
            for model in MODELS:
                push(address, model.replace("_", "-"), FIXTURES / f"{model}.onnx")
            push(address, STATS_MODEL, FIXTURES / "diabetes_gbr.onnx")
            with grpcclient.InferenceServerClient(url=proc.grpc_address) as client:
                authorized(client)
                health_and_metadata(client, address)
                inference(client)
                alias(client, address)
                streaming(client)
                errors(client)
                repository(client)
                statistics(client)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"tritonclient.grpc: {checks} checks passed")


if __name__ == "__main__":
    main()
