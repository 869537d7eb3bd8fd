"""Starting the real modelbay binary and pushing models to it, for the Python client checks."""
import os
import subprocess
import urllib.request
from pathlib import Path


def start_server(binary, data_dir, *extra):
    """Starts `modelbay serve` on 127.0.0.1 port 0 (HTTP and gRPC); returns the process and its
    HTTP host:port. The gRPC host:port is left in `proc.grpc_address`."""
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
         "--data-dir", data_dir, *extra],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "warn"},
    )
    proc.grpc_address = None
    for line in proc.stdout:
        if line.startswith("modelbay gRPC listening on "):
            proc.grpc_address = line.strip().rsplit(" ", 1)[1]
        if line.startswith("modelbay listening on http://"):
            return proc, line.strip().rsplit("http://", 1)[1]
    raise RuntimeError("server exited before listening")


def push(address, name, path):
    """Pushes the file at `path` as the next version of `name`; fails unless the answer is 201."""
    request = urllib.request.Request(
        f"http://{address}/api/v1/models/{name}/versions", data=Path(path).read_bytes(), method="POST")
    with urllib.request.urlopen(request) as response:
        if response.status != 201:
            raise AssertionError(f"push {name}: {response.status}")
