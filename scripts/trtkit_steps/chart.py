"""The bench's chart: median latency per batch size, one bar per framework and mode."""


def series_label(row, modes_by_framework):
    """'tensorrt (on-device)' where a framework has several modes, else just the framework."""
    if len(modes_by_framework[row["framework"]]) > 1:
        return "%s (%s)" % (row["framework"], row["mode"])
    return row["framework"]


def _series(rows):
    """{label: {batch: median_ms}} in the rows' order, timed rows only."""
    modes_by_framework = {}
    for row in rows:
        modes_by_framework.setdefault(row["framework"], set()).add(row["mode"])
    series = {}
    order = []
    for row in rows:
        label = series_label(row, modes_by_framework)
        if label not in series:
            series[label] = {}
            order.append(label)
        series[label][row["batch"]] = row["median_ms"]
    return [(label, series[label]) for label in order]


def _ms_label(ms):
    return "%.3g" % ms if ms < 1000 else "%.0f" % ms  # no 2.5e+04 on the slow bars


def draw_latency_chart(rows, device, path):
    """Write a PNG to path and return path; None without matplotlib or timed rows."""
    timed = [r for r in rows if r.get("median_ms")]
    if not timed:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display in the container
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    batches = sorted(set(r["batch"] for r in timed))
    series = _series(timed)
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(9, 5), dpi=120)
    for i, (label, medians) in enumerate(series):
        offset = (i - (len(series) - 1) / 2.0) * width
        xs = [k + offset for k, b in enumerate(batches) if b in medians]
        ys = [medians[b] for b in batches if b in medians]
        ax.bar(xs, ys, width, label=label)
        for x, y in zip(xs, ys):
            ax.text(x, y * 1.08, _ms_label(y), ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")  # batch 1 and batch 100000 differ by orders of magnitude
    ax.set_xticks(range(len(batches)))
    ax.set_xticklabels(["%d" % b for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("median latency per batch (ms, log scale)")
    ax.set_title("Median latency by framework - %s" % device)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.set_axisbelow(True)
    ax.margins(y=0.15)  # room for the value labels above the tallest bars
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
