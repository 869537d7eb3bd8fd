"""Starting the real modelbay binary and pushing models to it, for the Python client checks."""
import os
import subprocess
import urllib.request
from pathlib import Path

# The admin key of the server last started, sent with every request these checks make.
API_KEY = None


class _Bearer(urllib.request.BaseHandler):
    """Adds the API key to every urllib request."""

    def http_request(self, request):
        if API_KEY:
            request.add_unredirected_header("Authorization", f"Bearer {API_KEY}")
        return request

    https_request = http_request


urllib.request.install_opener(urllib.request.build_opener(_Bearer()))


class BearerPlugin:
    """A tritonclient plugin (HTTP and gRPC) that sends the API key with every call."""

    def __call__(self, request):
        request.headers["authorization"] = f"Bearer {API_KEY}"


def authorized(client):
    """Registers the API key with a tritonclient client; returns the client."""
    client.register_plugin(BearerPlugin())
    return client


def start_server(binary, data_dir, *extra):
    """Starts `modelbay serve` on 127.0.0.1 port 0 (HTTP and gRPC); returns the process and its
    HTTP host:port. The gRPC host:port is left in `proc.grpc_address`, the admin key the server
    wrote in `API_KEY` (urllib requests send it from then on)."""
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
         "--data-dir", data_dir, *extra],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "warn"},
    )
    proc.grpc_address = None
    for line in proc.stdout:
        if line.startswith("modelbay gRPC listening on "):
            proc.grpc_address = line.strip().rsplit(" ", 1)[1]
        if line.startswith("modelbay listening on http"):
            global API_KEY
            API_KEY = (Path(data_dir) / "admin.key").read_text().strip()
            # The modelbay CLI commands the checks run find the key here.
            os.environ["MODELBAY_API_KEY"] = API_KEY
            return proc, line.strip().rsplit("://", 1)[1]
    raise RuntimeError("server exited before listening")


def push(address, name, path, scheme="http", context=None):
    """Pushes the file at `path` as the next version of `name`; fails unless the answer is 201.
    `context` is the ssl.SSLContext for an https server."""
    request = urllib.request.Request(
        f"{scheme}://{address}/api/v1/models/{name}/versions", data=Path(path).read_bytes(),
        method="POST")
    # urlopen with a context builds its own opener, without the installed bearer handler.
    if API_KEY:
        request.add_header("Authorization", f"Bearer {API_KEY}")
    with urllib.request.urlopen(request, context=context) as response:
        if response.status != 201:
            raise AssertionError(f"push {name}: {response.status}")
