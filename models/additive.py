"""An additive LightGBM model as exact lookup tables, and those tables as an ONNX graph.

With `interaction_constraints=[[0], [1], ...]` every tree splits on one feature only, so the raw
score (log-odds) is `sum over trees` = `sum over features of g_j(x_j)`: each g_j is a step
function whose steps sit at the thresholds of the trees that use feature j. We read each g_j
from LightGBM itself (leaf index of every tree for one probe value per step, `pred_leaf=True`,
and the leaf's output), so missing values take the same default direction LightGBM takes,
without re-implementing its decision rules. Each g_j is centred on its mean over the training
rows, the means go into the bias: a contribution is then "how much this feature moved the
log-odds away from the average applicant", exactly, and contributions + bias = logit.

Numeric features: LightGBM goes left when `x <= threshold` (in double), so the step index of x
is the number of thresholds strictly below x; NaN has its own slot. LightGBM first reads any
|x| <= 1e-35 (its kZeroThreshold) as 0, and so does the graph. Categorical features: one
slot per documented code, and one for missing (-1 or out of range).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPSET = 17
IR_VERSION = 8
# LightGBM reads |x| <= kZeroThreshold (1e-35f) as exactly 0 before it walks a tree; so do we.
K_ZERO = float(np.float32(1e-35))


def zeroed(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.abs(x) <= K_ZERO, 0.0, x)


def _representative(t: np.ndarray, k: int) -> float:
    """A value of step k, i.e. of (t[k-1], t[k]] (open below/above at the ends), that LightGBM
    reads unchanged (not in LightGBM's zero band), or 0 if the step holds only such values."""
    lower = t[k - 1] if k > 0 else -np.inf
    if k == len(t):
        rep = np.nextafter(lower, np.inf) if len(t) else 0.0
        return rep if abs(rep) > K_ZERO else 2 * K_ZERO
    if abs(t[k]) > K_ZERO:
        return float(t[k])
    below = np.nextafter(-K_ZERO, -np.inf)
    if below > lower:
        return float(below)
    return 0.0


@dataclass
class ShapeTables:
    numeric_names: list[str]
    categorical_names: list[str]
    thresholds: list[np.ndarray]      # per numeric feature: sorted float64 thresholds (K_j)
    numeric_values: list[np.ndarray]  # per numeric feature: K_j + 1 steps, then the NaN slot
    category_counts: list[int]        # per categorical feature: number of documented codes C_j
    categorical_values: list[np.ndarray]  # per categorical feature: C_j codes, then missing
    bias: float
    # LightGBM reads |x| <= K_ZERO as 0; a model from elsewhere (the scorecard) does not.
    zero_band: bool = True

    @property
    def names(self) -> list[str]:
        return self.numeric_names + self.categorical_names


def _tree_features(dump: dict) -> list[set[int]]:
    def walk(node: dict, acc: set[int]) -> set[int]:
        if "split_feature" in node:
            if node.get("missing_type") == "Zero":
                raise ValueError("zero-as-missing splits are not supported by the exporter")
            acc.add(node["split_feature"])
            walk(node["left_child"], acc)
            walk(node["right_child"], acc)
        return acc

    return [walk(tree["tree_structure"], set()) for tree in dump["tree_info"]]


def _thresholds(dump: dict, feature: int) -> np.ndarray:
    found: set[float] = set()

    def walk(node: dict) -> None:
        if "split_feature" in node:
            if node["split_feature"] == feature:
                found.add(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    return np.array(sorted(found), dtype=np.float64)


def _leaf_sum(booster, probe: np.ndarray, trees: list[int]) -> np.ndarray:
    """Sum over `trees` of the output of the leaf each probe row reaches."""
    if not trees:
        return np.zeros(len(probe))
    leaves = booster.predict(probe, pred_leaf=True).astype(int)  # [rows, trees]
    out = np.zeros(len(probe))
    for t in trees:
        out += np.array([booster.get_leaf_output(t, int(leaf)) for leaf in leaves[:, t]])
    return out


def extract(booster, numeric_names: list[str], categorical_names: list[str],
            category_counts: list[int], X_train: np.ndarray) -> ShapeTables:
    """Read every feature's step function out of an interaction-constrained booster.

    `X_train` (float64, columns numeric then categorical codes as floats, NaN missing) centres
    the step functions; the booster must have been trained on the same column order.
    """
    names = numeric_names + categorical_names
    n_features = len(names)
    if booster.num_feature() != n_features:
        raise ValueError("booster and feature list disagree")
    dump = booster.dump_model()
    per_tree = _tree_features(dump)
    if any(len(fs) > 1 for fs in per_tree):
        raise ValueError("a tree uses more than one feature: the model is not additive")
    constant_trees = [t for t, fs in enumerate(per_tree) if not fs]
    trees_of = {j: [t for t, fs in enumerate(per_tree) if fs == {j}] for j in range(n_features)}

    constant = 0.0
    if constant_trees:
        constant = float(_leaf_sum(booster, np.full((1, n_features), np.nan), constant_trees)[0])

    thresholds, numeric_values, categorical_values = [], [], []
    for j, _ in enumerate(numeric_names):
        t = _thresholds(dump, j)
        reps = [_representative(t, k) for k in range(len(t) + 1)] + [np.nan]
        probe = np.full((len(reps), n_features), np.nan)
        probe[:, j] = reps
        thresholds.append(t)
        numeric_values.append(_leaf_sum(booster, probe, trees_of[j]))
    for i, count in enumerate(category_counts):
        j = len(numeric_names) + i
        reps = [float(c) for c in range(count)] + [np.nan]
        probe = np.full((len(reps), n_features), np.nan)
        probe[:, j] = reps
        values = _leaf_sum(booster, probe, trees_of[j])
        # An out-of-range code must behave like missing in LightGBM too (both go "right").
        outside = np.full((2, n_features), np.nan)
        outside[:, j] = [-1.0, float(count)]
        if not np.array_equal(_leaf_sum(booster, outside, trees_of[j]), values[[-1, -1]]):
            raise ValueError(f"{names[j]}: LightGBM treats unknown codes unlike missing")
        categorical_values.append(values)

    tables = ShapeTables(list(numeric_names), list(categorical_names), thresholds,
                         numeric_values, list(category_counts), categorical_values, 0.0)
    raw = contributions(tables, X_train)
    means = raw.mean(axis=0)
    for j in range(len(numeric_names)):
        tables.numeric_values[j] = tables.numeric_values[j] - means[j]
    for i in range(len(categorical_names)):
        tables.categorical_values[i] = tables.categorical_values[i] - means[len(numeric_names) + i]
    tables.bias = constant + float(means.sum())
    return tables


def contributions(tables: ShapeTables, X: np.ndarray) -> np.ndarray:
    """The tables applied in numpy (the reference the ONNX graph is compared with)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((len(X), len(tables.names)))
    for j, (t, v) in enumerate(zip(tables.thresholds, tables.numeric_values)):
        x = zeroed(X[:, j]) if tables.zero_band else X[:, j]
        idx = (x[:, None] > t[None, :]).sum(axis=1)
        idx[np.isnan(x)] = len(t) + 1
        out[:, j] = v[idx]
    base = len(tables.numeric_names)
    for i, (count, v) in enumerate(zip(tables.category_counts, tables.categorical_values)):
        c = X[:, base + i]
        code = np.where(np.isnan(c), -1, c).astype(np.int64)
        code[(code < 0) | (code >= count)] = count
        out[:, base + i] = v[code]
    return out


def to_onnx(tables: ShapeTables, *, model_version: str, doc: str,
            graph_name: str = "credit_additive_model"):
    """The tables as an ONNX graph (opset 17), all arithmetic in double.

    Inputs: `numeric` float32 [N, Fn] (NaN = missing), `categorical` int64 [N, Fc] (-1 = missing).
    Outputs: `probability` double [N] (of default), `logit` double [N], `contributions` double
    [N, Fn + Fc] (per-feature log-odds, numeric then categorical), `bias` double [1].
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    fn, fc = len(tables.numeric_names), len(tables.categorical_names)
    kmax = max([len(t) for t in tables.thresholds] + [1])
    thr = np.full((1, fn, kmax), np.inf)
    for j, t in enumerate(tables.thresholds):
        thr[0, j, :len(t)] = t
    num_offsets = np.cumsum([0] + [len(v) for v in tables.numeric_values[:-1]]).astype(np.int64)
    nan_slot = np.array([len(t) + 1 for t in tables.thresholds], dtype=np.int64)
    num_table = np.concatenate(tables.numeric_values).astype(np.float64)
    cat_offsets = np.cumsum([0] + [len(v) for v in tables.categorical_values[:-1]]).astype(np.int64)
    cat_counts = np.array(tables.category_counts, dtype=np.int64)
    cat_table = np.concatenate(tables.categorical_values).astype(np.float64)

    inits = [
        numpy_helper.from_array(thr, "thresholds"),
        numpy_helper.from_array(nan_slot, "nan_slot"),
        numpy_helper.from_array(num_offsets, "num_offsets"),
        numpy_helper.from_array(num_table, "num_table"),
        numpy_helper.from_array(cat_counts, "cat_counts"),
        numpy_helper.from_array(cat_offsets, "cat_offsets"),
        numpy_helper.from_array(cat_table, "cat_table"),
        numpy_helper.from_array(np.array([tables.bias], dtype=np.float64), "bias_value"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
    ]
    if tables.zero_band:
        inits += [numpy_helper.from_array(np.array(K_ZERO, dtype=np.float64), "k_zero"),
                  numpy_helper.from_array(np.array(0.0, dtype=np.float64), "zero_d")]
    n = helper.make_node
    nodes = [
        # numeric: step index = number of thresholds strictly below x; NaN -> its own slot
        n("Cast", ["numeric"], ["x_in"], to=TensorProto.DOUBLE),
        *([n("Abs", ["x_in"], ["x_abs"]),
           n("LessOrEqual", ["x_abs", "k_zero"], ["x_tiny"]),
           n("Where", ["x_tiny", "zero_d", "x_in"], ["x"])] if tables.zero_band
          else [n("Identity", ["x_in"], ["x"])]),
        n("Unsqueeze", ["x", "axis2"], ["x3"]),
        n("Greater", ["x3", "thresholds"], ["above"]),
        n("Cast", ["above"], ["above_i"], to=TensorProto.INT64),
        n("ReduceSum", ["above_i", "axis2"], ["step"], keepdims=0),
        n("IsNaN", ["x"], ["x_nan"]),
        n("Where", ["x_nan", "nan_slot", "step"], ["num_idx"]),
        n("Add", ["num_idx", "num_offsets"], ["num_flat"]),
        n("Gather", ["num_table", "num_flat"], ["num_contrib"], axis=0),
        # categorical: documented code, or the missing slot for -1 / out of range
        n("Less", ["categorical", "zero"], ["cat_neg"]),
        n("GreaterOrEqual", ["categorical", "cat_counts"], ["cat_big"]),
        n("Or", ["cat_neg", "cat_big"], ["cat_missing"]),
        n("Where", ["cat_missing", "cat_counts", "categorical"], ["cat_idx"]),
        n("Add", ["cat_idx", "cat_offsets"], ["cat_flat"]),
        n("Gather", ["cat_table", "cat_flat"], ["cat_contrib"], axis=0),
        # log-odds and probability
        n("Concat", ["num_contrib", "cat_contrib"], ["contributions"], axis=1),
        n("ReduceSum", ["contributions", "axis1"], ["contrib_sum"], keepdims=0),
        n("Add", ["contrib_sum", "bias_value"], ["logit"]),
        n("Sigmoid", ["logit"], ["probability"]),
        n("Identity", ["bias_value"], ["bias"]),
    ]
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("numeric", TensorProto.FLOAT, ["N", fn]),
         helper.make_tensor_value_info("categorical", TensorProto.INT64, ["N", fc])],
        [helper.make_tensor_value_info("probability", TensorProto.DOUBLE, ["N"]),
         helper.make_tensor_value_info("logit", TensorProto.DOUBLE, ["N"]),
         helper.make_tensor_value_info("contributions", TensorProto.DOUBLE, ["N", fn + fc]),
         helper.make_tensor_value_info("bias", TensorProto.DOUBLE, [1])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="lending-models-train", producer_version=model_version,
                              doc_string=doc)
    model.ir_version = IR_VERSION
    model.model_version = 1
    helper.set_model_props(model, {"model_version": model_version,
                                   "numeric_features": ",".join(tables.numeric_names),
                                   "categorical_features": ",".join(tables.categorical_names)})
    onnx.checker.check_model(model, full_check=True)
    return model
