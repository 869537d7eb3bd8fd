#!/usr/bin/env python3
"""Writes a wide MLP (30 -> 1024 -> 1024 -> 2, ReLU, softmax; 1.1 M float32 weights, seeded)
as ONNX, for bench/batching.sh: a model whose engine run, not HTTP, dominates a one-row request.

    python3 bench/wide_mlp.py OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
sizes = [30, 1024, 1024, 2]
nodes, weights = [], []
x = "input"
for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
    w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = np.zeros(n_out, dtype=np.float32)
    weights += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
    y = f"h{i}"
    nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [y]))
    if i < len(sizes) - 2:
        nodes.append(helper.make_node("Relu", [y], [f"r{i}"]))
        y = f"r{i}"
    x = y
nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=1))
graph = helper.make_graph(
    nodes,
    "wide_mlp",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 30])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    weights,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
