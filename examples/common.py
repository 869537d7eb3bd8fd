"""What every example needs, with Python's standard library only: where the server is, the API
key, JSON over HTTP, pushing a model, reading /metrics, and checking an outcome.

Environment:
  MODELBAY_SERVER   the server's address (default http://127.0.0.1:8080, the demo's)
  MODELBAY_API_KEY  a key with the publisher role or above; by default the demo's admin key,
                    read from modelbay-data/admin.key
  MODELBAY_BIN      the modelbay binary, to push a model folder (default: the demo's build)
"""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
SERVER = os.environ.get("MODELBAY_SERVER", "http://127.0.0.1:8080").rstrip("/")


def api_key() -> str:
    key = os.environ.get("MODELBAY_API_KEY")
    if key:
        return key
    demo_key = ROOT / "modelbay-data" / "admin.key"
    if demo_key.exists():
        return demo_key.read_text().strip()
    sys.exit("set MODELBAY_API_KEY (the demo prints one; it is in modelbay-data/admin.key)")


KEY = api_key()


class ApiError(Exception):
    """An answer of 400 or above, with the server's own error message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


def call(method: str, path: str, body=None, content_type: str = "application/json",
         headers: dict | None = None):
    """Sends one request; returns (parsed JSON or None, response headers). `body` is sent as
    JSON unless it is bytes."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(SERVER + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {KEY}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request) as response:
            raw = response.read()
            return (json.loads(raw) if raw else None), response.headers
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            message = json.loads(raw)["error"]
            # The OpenAI endpoints' errors are objects.
            message = message["message"] if isinstance(message, dict) else message
        except (ValueError, KeyError, TypeError):
            message = raw.decode(errors="replace")
        raise ApiError(error.code, str(message)) from None


def push(model: str, path: Path, **query) -> dict:
    """Pushes a model file (raw bytes) or folder (packed by `modelbay push`) as the model's next
    version; returns its VersionRecord."""
    if path.is_dir():
        binary = os.environ.get("MODELBAY_BIN") or str(
            Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "modelbay")
        flags = ["--promote"] if query.get("promote") == "true" else []
        out = subprocess.run(
            [binary, "push", model, str(path), "--server", SERVER, "--json", *flags],
            env={**os.environ, "MODELBAY_API_KEY": KEY}, check=True, capture_output=True, text=True)
        return json.loads(out.stdout)
    suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
    record, _ = call("POST", f"/api/v1/models/{model}/versions{suffix}", path.read_bytes(),
                     content_type="application/octet-stream")
    return record


def push_once(model: str, path: Path) -> dict:
    """The model's newest version, pushed first if the model does not exist yet."""
    try:
        versions, _ = call("GET", f"/api/v1/models/{model}/versions")
    except ApiError as error:
        if error.status != 404:
            raise
        return push(model, path)
    return versions["versions"][-1]


def infer(model: str, inputs: list, outputs: list | None = None, headers: dict | None = None):
    """One v2 inference request; returns (response, the version that answered)."""
    body = {"inputs": inputs, **({"outputs": [{"name": o} for o in outputs]} if outputs else {})}
    response, answer_headers = call("POST", f"/v2/models/{model}/infer", body, headers=headers)
    return response, int(answer_headers["x-modelbay-model-version"])


def fp32(name: str, rows: list[list[float]]) -> dict:
    """A v2 FP32 input tensor holding `rows`, one list of features per row."""
    return {"name": name, "datatype": "FP32", "shape": [len(rows), len(rows[0])],
            "data": [v for row in rows for v in row]}


def output(response: dict, name: str) -> list:
    """The flat data of one output of a v2 response."""
    return next(o["data"] for o in response["outputs"] if o["name"] == name)


def metric(name: str, **labels) -> float:
    """The sum of the /metrics samples of `name` whose labels include `labels`."""
    request = urllib.request.Request(SERVER + "/metrics")
    request.add_header("Authorization", f"Bearer {KEY}")
    with urllib.request.urlopen(request) as response:
        text = response.read().decode()
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def expect(condition: bool, what: str) -> None:
    """Stops the example with `what` unless `condition` holds; says `ok` otherwise."""
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"  ok: {what}")
