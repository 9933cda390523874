"""PNG plots: learned weights per layer (the paper's Figure 2), chrF++ heatmaps, quality versus speed."""
import json
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str) -> Path:
    """Lay out, write out/name at the plots' common resolution, and free the figure."""
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    target = out / name
    fig.savefig(target, dpi=110)
    _pyplot().close(fig)
    return target


def plot_learned_weights(pool_dir: Path, out: Path) -> list[Path]:
    """One panel per direction: w_out (target) and w_in (source) by layer, as in Figure 2."""
    plt = _pyplot()
    files = sorted((pool_dir / "weights").glob("*.json"))
    if not files:
        return []
    cols = min(4, len(files))
    rows = -(-len(files) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, path in zip(axes.flat, files):
        data = json.loads(path.read_text())
        layers = range(1, len(data["layers"]) + 1)
        ax.plot(layers, [w["w_out"] for w in data["layers"]], marker="o", label="target (w_out)")
        ax.plot(layers, [w["w_in"] for w in data["layers"]], marker="x", label="source (w_in)")
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set_title(f"{data['src']} → {data['tgt']}")
        ax.set_xlabel("layer")
        ax.set_ylabel("softmax weight")
    for ax in list(axes.flat)[len(files):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    return [_save(fig, out, "learned_weights.png")]


def plot_heatmaps(results_json: Path, out: Path) -> list[Path]:
    """A src x tgt chrF++ grid for every method of a quality run."""
    plt = _pyplot()
    data = json.loads(results_json.read_text())
    langs = data["languages"]
    written = []
    for method, scores in data["scores"].items():
        grid = [[scores.get(f"{s}-{t}", float("nan")) for t in langs] for s in langs]
        fig, ax = plt.subplots(figsize=(4.5, 4))
        image = ax.imshow(grid, cmap="viridis")
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(langs)), langs)
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        ax.set_title(f"chrF++: {method}")
        for i in range(len(langs)):
            for j in range(len(langs)):
                if grid[i][j] == grid[i][j]:
                    ax.text(j, i, f"{grid[i][j]:.1f}", ha="center", va="center", color="white", fontsize=8)
        fig.colorbar(image, ax=ax)
        written.append(_save(fig, out, f"heatmap_{method.replace(':', '_')}.png"))
    return written


def plot_quality_vs_speed(points: list[dict], out: Path) -> Path:
    """points: {"label", "chrf", "sentences_per_s"}; one dot per engine/precision."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for p in points:
        ax.scatter(p["sentences_per_s"], p["chrf"])
        ax.annotate(p["label"], (p["sentences_per_s"], p["chrf"]), fontsize=8)
    ax.set_xlabel("sentences / s")
    ax.set_ylabel("chrF++")
    ax.set_title("quality versus speed")
    return _save(fig, out, "quality_vs_speed.png")


def plot_gap_vs_data(points: dict[str, list], out: Path) -> Path:
    """Merged minus full fine-tuning per direction (with its interval) against the training pairs of the
    direction's scarcer non-English language, one series per recipe."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, pts) in enumerate(points.items()):
        xs = [n * (1 + 0.04 * i) for n, _ in pts]  # a small offset keeps the series apart
        ys = [d.value for _, d in pts]
        errors = [[d.value - d.low for _, d in pts], [d.high - d.value for _, d in pts]]
        ax.errorbar(xs, ys, yerr=errors, fmt="o", capsize=2, label=label)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("training pairs of the scarcer non-English language (corpus)")
    ax.set_ylabel("chrF++: merged − full fine-tuning")
    ax.legend(fontsize=8)
    return _save(fig, out, "gap_vs_data.png")
