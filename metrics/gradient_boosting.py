"""scikit-learn's ``GradientBoostingClassifier`` (Friedman 2001, alg. 6) as DCI fits it, with its
feature importances: the estimator of ``metrics.dci``, grown in a compiled kernel (numba).

Why our own: the reference's scikit-learn fit takes minutes on a 10-dim code of dSprites; this one
grows the same trees (``TreeGrower``'s docstring) in seconds. The fast boosting libraries are no
substitute (README, "Disentanglement metrics")."""

from __future__ import annotations

import numba
import numpy as np


def boosted_tree_importance(codes: np.ndarray, y: np.ndarray, num_train: int, seed: int, rounds: int = 100,
                             learning_rate: float = 0.1, depth: int = 3) -> tuple[np.ndarray, float]:
    """(importance of each code dimension, test accuracy) of scikit-learn's
    ``GradientBoostingClassifier`` with its defaults (Friedman 2001, alg. 6), which the reference
    fits: from the log class priors, each round fits per class a depth-3 least-squares tree to the
    residuals ``onehot(y) - softmax`` (one tree on ``y - sigmoid`` for two classes), sets each leaf
    to the Newton step ``(K-1)/K sum r / sum p(1-p)`` (``sum r / sum p(1-p)`` for two classes) and
    adds 0.1 times it; a dimension's importance is the squared-error reduction of its splits summed
    over all trees, normalised to sum 1 (``feature_importances_``). :class:`TreeGrower` grows the
    trees as scikit-learn's ``DecisionTreeRegressor`` does, all of a round's in one call.

    Dimensions that make the same splits (equal or mirrored ranks: copies, monotone transforms)
    tie at every node, where scikit-learn picks one at random: one of each group is fitted and its
    importance split evenly among the group, scikit-learn's expectation without its noise.

    Without a dimension that varies on the training points, or with a single training class, no
    tree can split: every importance is 0 and the prediction is the most frequent training class
    (scikit-learn's prior; it refuses a single class)."""
    x, x_test = codes[:num_train].astype(np.float32), codes[num_train:].astype(np.float32)  # as scikit-learn
    classes, labels = np.unique(y[:num_train], return_inverse=True)
    groups = _interchangeable_columns(x)
    importance = np.zeros(codes.shape[1])
    if len(classes) == 1 or not groups:
        majority = classes[np.bincount(labels).argmax()]
        return importance, float(np.mean(y[num_train:] == majority))
    representatives = np.array([group[0] for group in groups])
    x, x_test = np.ascontiguousarray(x[:, representatives]), np.ascontiguousarray(x_test[:, representatives])
    k = len(classes)
    binary = k == 2
    # raw predictions, residuals and leaves are [trees, points]
    targets = np.eye(k)[labels].T[1:] if binary else np.eye(k)[labels].T
    prior = np.bincount(labels, minlength=k) / len(labels)
    initial = np.log(prior[1:] / prior[:1]) if binary else np.log(prior)
    raw, test_raw = np.repeat(initial[:, None], len(x), axis=1), np.repeat(initial[:, None], len(x_test), axis=1)
    grower = TreeGrower(x, depth, np.random.default_rng(seed))
    tree_rows = np.arange(len(initial))[:, None] * grower.leaves
    newton_scale = 1.0 if binary else (k - 1) / k
    fitted = np.zeros(x.shape[1])
    for _ in range(rounds):
        p = _probabilities(raw)
        residuals = targets - p
        splits, leaf_of, reduction = grower.grow(residuals)
        fitted += reduction
        cells = (tree_rows + leaf_of).ravel()
        size = len(initial) * grower.leaves
        numerator = newton_scale * np.bincount(cells, residuals.ravel(), minlength=size)
        denominator = np.bincount(cells, (p * (1 - p)).ravel(), minlength=size)
        leaf_values = np.divide(numerator, denominator, out=np.zeros(size), where=np.abs(denominator) >= 1e-150)
        raw += learning_rate * leaf_values.take(tree_rows + leaf_of)
        test_raw += learning_rate * leaf_values.take(tree_rows + TreeGrower.apply(splits, x_test))
    for group, value in zip(groups, fitted):
        importance[group] = value / len(group)
    predictions = classes[(test_raw[0] > 0).astype(int)] if binary else classes[test_raw.argmax(axis=0)]
    return (importance / importance.sum() if importance.sum() > 0 else importance), float(np.mean(predictions == y[num_train:]))


class TreeGrower:
    """scikit-learn's least-squares regression trees (``DecisionTreeRegressor(max_depth=depth)``,
    ``_splitter.pyx``'s best splitter) on the training codes ``x`` [N, D] (float32), one per row of
    a round's residuals [trees, N].

    As scikit-learn: a node of one point or of zero variance (to rounding) is a leaf; its split is
    the one of largest squared-error reduction, at the midpoint of consecutive values more than
    1e-7 apart (float32 arithmetic); within a dimension the lowest best threshold wins, and among
    dimensions, which scikit-learn visits in a random order keeping the first strictly better, a
    uniformly random one of the exact ties (rounding decides near-ties, in both).

    Where scikit-learn sorts each node's points along each dimension, we sort each dimension once
    and grow each tree level by level (:func:`_grow_trees`), keeping each dimension's points
    grouped by node, each node's run in increasing order (split stably into the children's runs).
    A threshold with ``n_left`` of a node's ``n`` points on its left reduces the squared error by
    ``n u^2 / (n_left n_right)``, where ``u`` is the left sum of the residuals less the node's mean
    (scikit-learn's proxy ``L^2 / n_left + (S - L)^2 / n_right`` less the node's constant
    ``S^2 / n``), a running sum over the node's run, so that the same left set gives the same sum
    in every dimension and exact ties stay exact, as in scikit-learn (a left set of one or two
    points, common in small nodes).

    Why compiled (numba): a level is a few operations per point, dimension and tree, which numpy
    and torch could only do in several passes over [trees, D, N] arrays (gathering each node's
    points, prefix sums, residual gathers, node statistics, routing) plus per-node call overhead;
    fused into one kernel, the 40-class factor of ``bench/metrics.py``'s code fits 1.9x faster on
    one thread, and the whole DCI 2.9x (most likely as the kernel also runs without the GIL, which
    the factors' threads queued for; one process, alternating, README "Speed"). The first call
    compiles it (~2.6 s), later processes load it from numba's cache (~0.1 s)."""

    def __init__(self, x: np.ndarray, depth: int, generator: np.random.Generator) -> None:
        self.depth, self.generator, self.leaves = depth, generator, 2**depth
        self.presorted = np.ascontiguousarray(np.argsort(x, axis=0, kind="stable").T.astype(np.int32))  # [D, N]
        self.x_sorted = np.take_along_axis(x.T, self.presorted, axis=1)
        self.x_columns = np.ascontiguousarray(x.T)

    def grow(self, residuals: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
        """Fit one tree to each row of ``residuals`` [trees, N]. Returns the splits of each level
        (dimension and threshold of each node, [trees, 2**level] each; a leaf sends every point
        left), each training point's leaf [trees, N] and each dimension's squared-error reduction
        summed over the trees' splits [D]."""
        trees, dims = len(residuals), len(self.presorted)
        # per level, a uniform number per tree, dimension and node ([trees, D, 2**level]) ranks exact ties
        ties = self.generator.random(trees * dims * (self.leaves - 1))
        dim, threshold, node, reduction = _grow_trees(self.presorted, self.x_sorted, self.x_columns,
                                                      np.ascontiguousarray(residuals, dtype=np.float64), self.depth, ties)
        splits = [(dim[level, :, :2**level], threshold[level, :, :2**level]) for level in range(self.depth)]
        return splits, node, reduction

    @staticmethod
    def _descend(node: np.ndarray, dim: np.ndarray, threshold: np.ndarray, x_columns: np.ndarray) -> np.ndarray:
        """The children [trees, M] of the points of ``x_columns`` [D, M] in nodes ``node`` [trees, M]
        of one level whose splits are ``dim`` and ``threshold`` [trees, nodes]: left when ``x <= threshold``."""
        at = np.arange(len(node))[:, None] * dim.shape[1] + node
        points = x_columns.shape[1]
        return 2 * node + (x_columns.take(dim.take(at) * points + np.arange(points)) > threshold.take(at))

    @staticmethod
    def apply(splits: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
        """The leaf [trees, M] of each point of ``x`` [M, D] in each tree."""
        node = np.zeros((len(splits[0][0]), len(x)), dtype=np.intp)
        x_columns = np.ascontiguousarray(x.T)
        for dim, threshold in splits:
            node = TreeGrower._descend(node, dim, threshold, x_columns)
        return node


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _grow_trees(presorted, x_sorted, x_columns, residuals, depth, ties):
    """:class:`TreeGrower`'s trees, one per row of ``residuals`` [trees, N], on the dimensions'
    orders ``presorted`` [D, N] (their values ``x_sorted``; the codes ``x_columns`` [D, N]).
    ``ties`` ranks exact ties among dimensions (level by level, [trees, D, 2**level] each).
    Returns each level's split dimension and threshold [depth, trees, 2**(depth-1)] (a leaf:
    dimension 0, threshold inf), each point's leaf [trees, N] and the reduction per dimension [D],
    summed level by level, as numpy's bincount of the splits.

    Each dimension's points (with their values and residuals) are kept grouped by node, each
    node's run in increasing order, and split stably into the children's runs after each level:
    a node's scan reads its run in sequence and keeps its running sum in a register."""
    trees, n = residuals.shape
    dims = presorted.shape[0]
    width = 2 ** (depth - 1)
    close = np.float32(1e-7)
    split_dim = np.zeros((depth, trees, width), np.intp)
    split_threshold = np.full((depth, trees, width), np.inf)
    node = np.zeros((trees, n), np.uint8)
    level_reduction = np.zeros((depth, dims))
    runs, children = np.empty((dims, n), np.int32), np.empty((dims, n), np.int32)
    run_x, child_x = np.empty((dims, n), np.float32), np.empty((dims, n), np.float32)
    run_residuals, child_residuals = np.empty((dims, n)), np.empty((dims, n))
    for tree in range(trees):
        for d in range(dims):
            for j in range(n):
                runs[d, j] = presorted[d, j]
                run_x[d, j] = x_sorted[d, j]
                run_residuals[d, j] = residuals[tree, presorted[d, j]]
        counts = np.zeros(1, np.intp)
        sums = np.zeros(1)
        sum_squares = np.zeros(1)
        for i in range(n):  # node statistics in point order, as numpy's bincount
            r = residuals[tree, i]
            counts[0] += 1
            sums[0] += r
            sum_squares[0] += r * r
        closed = np.zeros(1, np.bool_)
        for level in range(depth):
            nodes = 2**level
            growing = np.zeros(nodes, np.bool_)
            mean = np.zeros(nodes)
            starts = np.zeros(nodes, np.intp)
            for k in range(nodes):
                starts[k] = 0 if k == 0 else starts[k - 1] + counts[k - 1]
                if counts[k] >= 2 and not closed[k]:
                    mean[k] = sums[k] / counts[k]
                    growing[k] = sum_squares[k] / counts[k] - mean[k] * mean[k] > _EPSILON
            offset = trees * dims * (nodes - 1) + tree * dims * nodes
            next_closed = np.ones(2 * nodes, np.bool_)
            for k in range(nodes):
                if not growing[k]:
                    continue
                count = counts[k]
                # per dimension, the best reduction n u^2 / (n_left n_right) of the node's run at its lowest
                # threshold; among exactly tied dimensions, the one of the highest random rank
                top, chosen, rank, threshold = -np.inf, 0, -1.0, 0.0
                for d in range(dims):
                    best, below, above = -np.inf, np.float32(0), np.float32(0)
                    u, n_left, previous = 0.0, 0, np.float32(0)
                    for j in range(starts[k], starts[k] + count):
                        value = run_x[d, j]
                        if n_left > 0 and value > previous + close:  # float32, as scikit-learn
                            gain = u * u * (count / (n_left * (count - n_left)))
                            if gain > best:
                                best, below, above = gain, previous, value
                        u += run_residuals[d, j] - mean[k]
                        n_left += 1
                        previous = value
                    if best > top or (best == top and best > -np.inf and ties[offset + d * nodes + k] > rank):
                        top, chosen, rank = best, d, ties[offset + d * nodes + k]
                        threshold = np.float64(below) / 2.0 + np.float64(above) / 2.0
                if top == -np.inf:
                    continue
                next_closed[2 * k] = next_closed[2 * k + 1] = False
                level_reduction[level, chosen] += top
                split_dim[level, tree, k] = chosen
                split_threshold[level, tree, k] = threshold
            closed = next_closed
            counts = np.zeros(2 * nodes, np.intp)
            sums = np.zeros(2 * nodes)
            sum_squares = np.zeros(2 * nodes)
            for i in range(n):
                k = node[tree, i]
                child = 2 * k + (x_columns[split_dim[level, tree, k], i] > split_threshold[level, tree, k])
                node[tree, i] = child
                r = residuals[tree, i]
                counts[child] += 1
                sums[child] += r
                sum_squares[child] += r * r
            if level + 1 == depth:
                break
            for d in range(dims):  # each run split stably into its children's
                left = 0
                for k in range(nodes):
                    right = left + counts[2 * k]
                    for j in range(starts[k], starts[k] + counts[2 * k] + counts[2 * k + 1]):
                        i = runs[d, j]
                        is_right = node[tree, i] & 1
                        to = right if is_right else left
                        children[d, to] = i
                        child_x[d, to] = run_x[d, j]
                        child_residuals[d, to] = run_residuals[d, j]
                        right += is_right
                        left += 1 - is_right
                    left = right
            runs, children = children, runs
            run_x, child_x = child_x, run_x
            run_residuals, child_residuals = child_residuals, run_residuals
    reduction = np.zeros(dims)
    for level in range(depth):
        reduction += level_reduction[level]
    return split_dim, split_threshold, node, reduction


def _interchangeable_columns(x: np.ndarray) -> list[list[int]]:
    """The non-constant columns of ``x`` grouped by the partitions their thresholds make: two
    columns are in one group when their ranks (ties shared) are equal or mirrored."""
    groups: dict[bytes, list[int]] = {}
    for j, column in enumerate(x.T):
        ranks = np.unique(column, return_inverse=True)[1].ravel()
        top = ranks.max()
        if top == 0:
            continue
        mirrored = top - ranks
        differ = np.flatnonzero(ranks != mirrored)
        canonical = ranks if len(differ) == 0 or ranks[differ[0]] < mirrored[differ[0]] else mirrored
        groups.setdefault(canonical.astype(np.int64).tobytes(), []).append(j)
    return list(groups.values())


_EPSILON = np.finfo(np.float64).eps  # scikit-learn's tolerance for a zero impurity


def _probabilities(raw: np.ndarray) -> np.ndarray:
    """Sigmoid of one row of log-odds, or softmax over rows of classes (raw predictions [trees, N])."""
    if len(raw) == 1:
        return 1.0 / (1.0 + np.exp(-raw))
    e = np.exp(raw - raw.max(axis=0))
    return e / e.sum(axis=0)

