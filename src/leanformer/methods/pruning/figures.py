"""`leanformer report`'s figure for pruned students: heads and FFN width kept per layer."""

from __future__ import annotations

from pathlib import Path

from ...api import saved_recipe


def kept_structure(student: Path) -> dict | None:
    """The structure a finalized pruning stage recorded in the saved student, or None."""
    for stage in saved_recipe(student):
        if stage.get("method") == "pruning" and stage.get("structure"):
            return stage["structure"]
    return None


def structure_figure(students: list[Path]):
    """Heatmaps: heads kept and FFN dims kept, per layer (columns) of each pruned student (rows)."""
    pruned = [(s, kept_structure(s)) for s in students]
    pruned = [(s, st) for s, st in pruned if st]
    if not pruned:
        return None
    import matplotlib.pyplot as plt  # only for reports: the library itself never draws

    fig, axes = plt.subplots(1, 2, figsize=(10, 1.2 + 0.45 * len(pruned)))
    # heads: one column per attention (encoder-decoders: each decoder layer's self- then cross-attention)
    panels = ((axes[0], "heads", "attention heads kept", "attention"), (axes[1], "ffn_dims", "FFN dimensions kept", "layer"))
    for ax, key, title, column in panels:
        grid = [st[key] for _, st in pruned]
        width = max(len(g) for g in grid)
        grid = [g + [0] * (width - len(g)) for g in grid]
        image = ax.imshow(grid, aspect="auto", cmap="viridis")
        for r, values in enumerate(grid):
            for c, v in enumerate(values):
                ax.text(c, r, str(v), ha="center", va="center", fontsize=7, color="white")
        ax.set_xlabel(column)
        ax.set_ylabel("student")
        ax.set_yticks(range(len(pruned)), [s.name for s, _ in pruned], fontsize=7)
        ax.set_xticks(range(width))
        ax.set_title(title)
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig
