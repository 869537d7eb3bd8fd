#!/usr/bin/env python3
"""Print the benchmark request body or the expected labels (stdlib only).

  v2_payload.py body   EXPECTED_JSON ROWS   -> v2 JSON request with the first ROWS rows of input "input"
  v2_payload.py labels EXPECTED_JSON ROWS   -> expected labels, space separated
  v2_payload.py check  EXPECTED_JSON ROWS RESPONSE_FILE
        -> exit 0 if RESPONSE_FILE is a v2 response whose INT64 [ROWS] output
           ("label" for modelbay, "predict" for MLServer) equals the expected labels
"""

import json
import sys


def load(path, rows):
    doc = json.load(open(path, encoding="utf-8"))
    inp = next(t for t in doc["inputs"] if t["name"] == "input")
    width = 1
    for d in inp["shape"][1:]:
        width *= d
    data = inp["data"][: rows * width]
    if len(data) != rows * width:
        raise SystemExit(f"{path} has fewer than {rows} rows")
    labels = next(t for t in doc["outputs"] if t["name"] == "label")["data"][:rows]
    body = {"inputs": [{"name": "input", "datatype": inp["datatype"],
                        "shape": [rows] + inp["shape"][1:], "data": data}]}
    return body, labels


def main():
    cmd, path, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    body, labels = load(path, rows)
    if cmd == "body":
        sys.stdout.write(json.dumps(body, separators=(",", ":")))
    elif cmd == "labels":
        print(" ".join(str(v) for v in labels))
    elif cmd == "check":
        try:
            resp = json.load(open(sys.argv[4], encoding="utf-8"))
            outs = resp["outputs"]
        except Exception as e:  # noqa: BLE001
            raise SystemExit(f"not a v2 JSON response: {e}")
        for name in ("label", "predict"):
            for t in outs:
                if t.get("name") == name:
                    got = [int(v) for v in t["data"]]
                    if got == labels and list(t.get("shape", [])) in ([rows], [rows, 1]):
                        print(f"output {name!r} {t.get('datatype')} {t.get('shape')} = {got} (expected {labels})")
                        return
                    raise SystemExit(f"output {name!r} = {got} shape {t.get('shape')}, expected {labels}")
        raise SystemExit(f"no 'label' or 'predict' output in response: {[t.get('name') for t in outs]}")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
