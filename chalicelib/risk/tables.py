"""The challenger's lookup tables, read out of its ONNX graph and evaluated in plain Python.

The challenger runs on every application next to the champion and must add less than 0.2 ms
at p99 (issue 15). Its graph (models/additive.py `to_onnx`) is 20-odd tiny operators over
lookup tables; onnxruntime spends ~45 us in per-operator overhead on it, and the tail on a
busy core is several times that. The same tables evaluated here take a few microseconds.

Nothing here is a second source of truth: the tables are the ONNX file's own initializers
(read with a minimal protobuf reader: no `onnx` package in the deployment), only a graph of
exactly `to_onnx`'s operators is accepted, and the scorer uses the tables only after they
agree with onnxruntime on every probe row (`probe_rows`: each threshold, just below and above
it, missing, each category and an unknown one), within PROBE_TOLERANCE. Otherwise the
challenger is scored by onnxruntime as before. Pure: no AWS, no onnxruntime import.

The arithmetic follows the graph: the numeric input is float32 (cast to double), a value within
K_ZERO of zero is zero (when the graph has that band), the bin is the number of thresholds
strictly below the value (NaN: its own slot), a category outside 0..count-1 is the missing
slot; the log-odds are the bias plus the contributions, and the probability their sigmoid.
"""
from __future__ import annotations

import math
import struct
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from typing import Iterator, Sequence

PROBE_TOLERANCE = 1e-12  # the graph sums in its own order; a shadow score needs no more

# models/additive.py to_onnx, node by node (with and without the zero band).
_HEAD = ["Cast"]
_ZERO_BAND = ["Abs", "LessOrEqual", "Where"]
_BODY = ["Unsqueeze", "Greater", "Cast", "ReduceSum", "IsNaN", "Where", "Add", "Gather",
         "Less", "GreaterOrEqual", "Or", "Where", "Add", "Gather",
         "Concat", "ReduceSum", "Add", "Sigmoid", "Identity"]
OPS_WITH_ZERO_BAND = _HEAD + _ZERO_BAND + _BODY
OPS_WITHOUT = _HEAD + ["Identity"] + _BODY

# TensorProto data types (onnx.proto) this reader understands, as struct formats.
_FORMATS = {1: "f", 7: "q", 11: "d"}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one protobuf message, in order."""
    i, end = 0, len(buf)
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield field, wire, value
        elif wire == 1:
            yield field, wire, buf[i:i + 8]
            i += 8
        elif wire == 2:
            length, i = _varint(buf, i)
            yield field, wire, buf[i:i + length]
            i += length
        elif wire == 5:
            yield field, wire, buf[i:i + 4]
            i += 4
        else:
            raise ValueError(f"protobuf wire type {wire} not expected in an ONNX model")


@dataclass(frozen=True)
class Graph:
    ops: list[str]
    tensors: dict[str, tuple[tuple[int, ...], tuple]]  # initializer -> (dims, flat values)


def _tensor(buf: bytes) -> tuple[str, tuple[int, ...], tuple] | None:
    name, dims, dtype, raw = "", [], None, None
    for field, wire, value in _fields(buf):
        if field == 1:       # dims: packed or one by one
            if wire == 2:
                j = 0
                while j < len(value):
                    d, j = _varint(value, j)
                    dims.append(d)
            else:
                dims.append(value)
        elif field == 2:
            dtype = value
        elif field == 8:
            name = value.decode()
        elif field == 9:
            raw = value
    if dtype not in _FORMATS or raw is None:  # only raw_data, as numpy_helper.from_array writes
        return None
    fmt = _FORMATS[dtype]
    count = len(raw) // struct.calcsize(fmt)
    return name, tuple(dims), struct.unpack(f"<{count}{fmt}", raw)


def read_graph(blob: bytes) -> Graph:
    """The operators and initializers of an ONNX model's main graph."""
    ops: list[str] = []
    tensors: dict[str, tuple[tuple[int, ...], tuple]] = {}
    for field, _, graph in _fields(blob):
        if field != 7:       # ModelProto.graph
            continue
        for gfield, _, value in _fields(graph):
            if gfield == 1:  # GraphProto.node: its op_type is field 4
                ops.append(next((v.decode() for f, _, v in _fields(value) if f == 4), ""))
            elif gfield == 5:  # GraphProto.initializer
                tensor = _tensor(value)
                if tensor is not None:
                    tensors[tensor[0]] = tensor[1:]
    return Graph(ops, tensors)


class AdditiveTables:
    """One additive lookup-table model, scored row by row."""

    def __init__(self, thresholds: list[list[float]], numeric: list[list[float]],
                 categorical: list[list[float]], bias: float, k_zero: float | None) -> None:
        self.thresholds = thresholds  # per numeric feature, ascending
        self.numeric = numeric        # per numeric feature: one value per bin, then the NaN slot
        self.categorical = categorical  # per categorical feature: one per code, then missing
        self.bias = bias
        self.k_zero = k_zero

    def logit(self, numeric: Sequence[float], categorical: Sequence[int]) -> float:
        total = self.bias
        k_zero = self.k_zero
        for x, cuts, values in zip(array("f", numeric), self.thresholds, self.numeric):
            if x != x:
                total += values[-1]
            else:
                if k_zero is not None and -k_zero <= x <= k_zero:
                    x = 0.0
                total += values[bisect_left(cuts, x)]
        for code, values in zip(categorical, self.categorical):
            total += values[code] if 0 <= code < len(values) - 1 else values[-1]
        return total

    def probability(self, numeric: Sequence[float], categorical: Sequence[int]) -> float:
        z = self.logit(numeric, categorical)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


def from_onnx(blob: bytes) -> AdditiveTables | None:
    """The tables of a graph `to_onnx` wrote; None for any other graph (score it with ORT)."""
    try:
        graph = read_graph(blob)
    except (ValueError, IndexError, UnicodeDecodeError, struct.error):
        return None
    t = graph.tensors
    names = {"thresholds", "nan_slot", "num_offsets", "num_table", "cat_counts", "cat_offsets",
             "cat_table", "bias_value"}
    if graph.ops == OPS_WITH_ZERO_BAND and "k_zero" in t:
        k_zero: float | None = t["k_zero"][1][0]
    elif graph.ops == OPS_WITHOUT:
        k_zero = None
    else:
        return None
    if not names <= set(t):
        return None
    dims, flat = t["thresholds"]
    if len(dims) != 3 or dims[0] != 1:
        return None
    fn, kmax = dims[1], dims[2]
    nan_slot, offsets, table = t["nan_slot"][1], t["num_offsets"][1], t["num_table"][1]
    counts, cat_offsets, cat_table = t["cat_counts"][1], t["cat_offsets"][1], t["cat_table"][1]
    if not len(nan_slot) == len(offsets) == fn or len(counts) != len(cat_offsets):
        return None
    thresholds, numeric = [], []
    for j in range(fn):
        n_cuts = nan_slot[j] - 1
        row = list(flat[j * kmax:(j + 1) * kmax])
        cuts, padding = row[:n_cuts], row[n_cuts:]
        if n_cuts < 0 or cuts != sorted(cuts) or any(p != math.inf for p in padding):
            return None
        end = offsets[j] + n_cuts + 2  # a value per bin (n_cuts + 1), then the NaN slot
        if end > len(table) or (j + 1 < fn and offsets[j + 1] != end):
            return None
        thresholds.append(cuts)
        numeric.append(list(table[offsets[j]:end]))
    categorical = []
    for i, (count, start) in enumerate(zip(counts, cat_offsets)):
        end = start + count + 1  # a value per code, then the missing slot
        if end > len(cat_table) or (i + 1 < len(counts) and cat_offsets[i + 1] != end):
            return None
        categorical.append(list(cat_table[start:end]))
    return AdditiveTables(thresholds, numeric, categorical, t["bias_value"][1][0], k_zero)


def probe_rows(tables: AdditiveTables, base_numeric: Sequence[float], base_categorical: Sequence[int]
               ) -> list[tuple[list[float], list[int]]]:
    """Rows that reach every bin of every feature from one base row: each threshold itself,
    the float32 neighbours on either side, zero, missing, each category, -1 and one past the
    last code; and the base row with every input missing."""
    def f32_next(x: float, up: bool) -> float:
        if math.isinf(x):
            return x
        bits = struct.unpack("<i", struct.pack("<f", x))[0]
        bits += 1 if (up == (x >= 0)) else -1
        if x == 0:
            bits = 1 if up else -2147483647
        return struct.unpack("<f", struct.pack("<i", bits))[0]

    rows: list[tuple[list[float], list[int]]] = [(list(base_numeric), list(base_categorical))]
    for j, cuts in enumerate(tables.thresholds):
        values = {0.0, math.nan, 1e-36, -1e-36, 1e30, -1e30}
        for cut in cuts:
            c32 = array("f", [cut])[0]
            values |= {c32, f32_next(c32, True), f32_next(c32, False)}
        for v in values:
            numeric = list(base_numeric)
            numeric[j] = v
            rows.append((numeric, list(base_categorical)))
    for i, values in enumerate(tables.categorical):
        for code in range(-1, len(values) + 1):
            categorical = list(base_categorical)
            categorical[i] = code
            rows.append((list(base_numeric), categorical))
    rows.append(([math.nan] * len(base_numeric), [-1] * len(base_categorical)))
    return rows
