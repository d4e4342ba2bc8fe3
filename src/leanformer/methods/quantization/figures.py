"""`leanformer report`'s figure for quantized students: the frozen range of every quantized activation."""

from __future__ import annotations

from pathlib import Path

from ...api import saved_recipe


def activation_ranges(student: Path) -> dict[str, tuple[float, float]]:
    """{quantizer name: (min, max)} read from a saved quantized student's weights, without building it."""
    if not any(stage.get("method") == "quantization" for stage in saved_recipe(student)):
        return {}
    from safetensors import safe_open

    out: dict[str, list[float]] = {}
    for file in sorted(student.glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for key in f.keys():
                if key.endswith((".range_min", ".range_max")) and ".probs." not in key:
                    out.setdefault(key.rsplit(".", 1)[0], [0.0, 0.0])["range_max" in key] = float(f.get_tensor(key))
    return {k: (v[0], v[1]) for k, v in out.items()}


def ranges_figure(students: list[Path]):
    """The frozen range [min, max] of every quantized activation, one bar per tensor."""
    quantized = [(s, activation_ranges(s)) for s in students]
    quantized = [(s, r) for s, r in quantized if r]
    if not quantized:
        return None
    import matplotlib.pyplot as plt  # only for reports: the library itself never draws

    fig, axes = plt.subplots(len(quantized), 1, figsize=(11, 3.2 * len(quantized)), squeeze=False)
    for ax, (student, ranges) in zip(axes[:, 0], quantized):
        names = list(ranges)
        lows, highs = [ranges[n][0] for n in names], [ranges[n][1] for n in names]
        ax.bar(range(len(names)), [h - lo for lo, h in zip(lows, highs)], bottom=lows, color="tab:green")
        ax.set_xlabel("quantized activation (model order)")
        ax.set_ylabel("range [min, max]")
        ax.set_title(f"{student.name}: activation ranges of {len(names)} quantized tensors")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
