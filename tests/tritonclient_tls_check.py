#!/usr/bin/env python3
"""Checks that NVIDIA's unmodified tritonclient talks to modelbay over TLS, on both ports.

Makes a throwaway CA and a server certificate for 127.0.0.1 with openssl, starts the real
server with `--tls-cert`/`--tls-key` (HTTPS and gRPC over TLS), pushes breast_cancer_lr, then
uses `tritonclient.http` (ssl=True, a context that trusts only the CA) and `tritonclient.grpc`
(ssl=True, the CA as root certificates) with the admin key: readiness, metadata and inference
compared with the fixture's expected outputs. A client that does not trust the CA is refused.

Usage: tests/tritonclient_tls_check.py [path/to/modelbay]   (needs ORT_DYLIB_PATH)
"""
import json
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from modelbay_server import authorized, push, start_server

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def openssl(folder, *args):
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def certificates(folder):
    """A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `folder`."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(folder, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=modelbay check CA")
    openssl(folder, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    Path(folder, "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(folder, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")


def expected():
    doc = json.loads((FIXTURES / "breast_cancer_lr.expected.json").read_text())
    inp = next(t for t in doc["inputs"] if t["name"] == "input")
    data = np.array(inp["data"], dtype=np.float32).reshape(inp["shape"])
    outputs = {t["name"]: np.array(t["data"]).reshape(t["shape"]) for t in doc["outputs"]}
    return data, outputs


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/debug/modelbay")
    checks = 0
    with tempfile.TemporaryDirectory() as tls, tempfile.TemporaryDirectory() as data_dir:
        certificates(tls)
        ca = Path(tls, "ca.pem")
        proc, address = start_server(binary, data_dir, "--tls-cert", f"{tls}/server.pem",
                                     "--tls-key", f"{tls}/server.key")
        try:
            context = ssl.create_default_context(cafile=str(ca))
            push(address, "bc", FIXTURES / "breast_cancer_lr.onnx", "https", context)
            data, outputs = expected()
            label = "label"

            http = authorized(httpclient.InferenceServerClient(
                address, ssl=True,
                ssl_context_factory=lambda: ssl.create_default_context(cafile=str(ca))))
            assert http.is_server_ready() and http.is_model_ready("bc")
            assert http.get_model_metadata("bc")["name"] == "bc"
            tensor = httpclient.InferInput("input", list(data.shape), "FP32")
            tensor.set_data_from_numpy(data, binary_data=True)
            result = http.infer("bc", [tensor])
            assert np.array_equal(result.as_numpy(label), outputs[label]), result.get_response()
            checks += 3

            grpc = authorized(grpcclient.InferenceServerClient(
                proc.grpc_address, ssl=True, root_certificates=str(ca)))
            assert grpc.is_server_ready() and grpc.is_model_ready("bc")
            assert grpc.get_model_metadata("bc").name == "bc"
            tensor = grpcclient.InferInput("input", list(data.shape), "FP32")
            tensor.set_data_from_numpy(data)
            result = grpc.infer("bc", [tensor])
            assert np.array_equal(result.as_numpy(label), outputs[label])
            checks += 3

            # The system's trust store does not know the throwaway CA: the handshake fails.
            untrusting = httpclient.InferenceServerClient(address, ssl=True)
            try:
                untrusting.is_server_live()
            except Exception as refused:
                assert "CERTIFICATE_VERIFY_FAILED" in str(refused) or "certificate" in str(refused).lower(), refused
                checks += 1
            else:
                raise AssertionError("a client without the CA was served")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"tritonclient over TLS: {checks} checks passed")


if __name__ == "__main__":
    main()
