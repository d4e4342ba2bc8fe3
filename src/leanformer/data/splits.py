"""Fixed train/validation/test splits.

Splits are drawn once with `SPLIT_SEED`, a constant: they never depend on the training seed or on
`max_train_samples`, so a test score always means the same rows. Rows keep their source order
inside each split.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from .spec import SPLITS

SPLIT_SEED = 20240611


def split_by_group(groups: Sequence[Hashable], fractions: tuple[float, float, float]) -> np.ndarray:
    """Split name ("train", "validation" or "test") for each row; rows sharing a group share a split.

    The sorted distinct groups are shuffled with `SPLIT_SEED`; the first `round(f_val * G)` go to
    validation, the next `round(f_test * G)` to test (each at least 1), the rest to train. Sizes are
    therefore fractions of groups, not of rows.
    """
    unique = sorted(set(groups))
    n_val = max(1, round(fractions[1] * len(unique)))
    n_test = max(1, round(fractions[2] * len(unique)))
    if len(unique) < n_val + n_test + 1:
        raise ValueError(f"{len(unique)} groups are too few for a train/validation/test split")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(unique))
    split_of_group = {}
    for rank, position in enumerate(order):
        split_of_group[unique[position]] = "validation" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return np.array([split_of_group[g] for g in groups])


def split_off_validation(n_rows: int, fraction: float = 0.1, cap: int = 2000) -> np.ndarray:
    """Split name per row of an official train file: a seeded `min(cap, n_rows * fraction)` rows
    (rounded down) become validation, the rest stay train (the official dev file is the test split)."""
    n_val = min(cap, int(n_rows * fraction))
    names = np.full(n_rows, "train", dtype=object)
    names[np.random.default_rng(SPLIT_SEED).permutation(n_rows)[:n_val]] = "validation"
    return names.astype(str)


def rows_of(split_names: np.ndarray) -> dict[str, np.ndarray]:
    """Row indices (in source order) of each split."""
    return {name: np.flatnonzero(split_names == name) for name in SPLITS}


# what users call their splits (a `split` column, datasets' names, run_glue's files)
SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "test": "test", "testing": "test"}


def complete_splits(names: np.ndarray, fraction: float = 0.1) -> tuple[np.ndarray, list[str]]:
    """Fill the splits a user's data does not give from its train rows: both missing -> 80/10/10 of
    train (as for a single file); one missing -> a seeded `fraction` of train becomes it. Returns the
    split names and what was carved (to be printed and recorded)."""
    missing = [s for s in ("validation", "test") if not (names == s).any()]
    train_rows = np.flatnonzero(names == "train")
    if not missing:
        return names, []
    names = names.astype(object)
    if len(missing) == 2:
        names[train_rows] = split_by_group(range(len(train_rows)), (0.8, 0.1, 0.1))
        return names.astype(str), ["validation and test: 10% of train each"]
    n_carved = max(1, int(len(train_rows) * fraction))
    if len(train_rows) - n_carved < 1:
        raise ValueError(f"{len(train_rows)} train rows are too few to carve a {missing[0]} split from")
    names[train_rows[np.random.default_rng(SPLIT_SEED).permutation(len(train_rows))[:n_carved]]] = missing[0]
    return names.astype(str), [f"{missing[0]}: {fraction:.0%} of train"]
