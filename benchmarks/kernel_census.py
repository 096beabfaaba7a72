"""Which GPU kernels one call launches, from Nsight Compute's CSV (issue 9: TensorRT's LSTM against cuDNN's).

    python3 benchmarks/kernel_census.py torch BATCH          three eager calls of the PyTorch version (run under ncu)
    python3 benchmarks/kernel_census.py table CSV [CSV...]   a Markdown table per CSV: the last call's kernels

The CSVs come from `ncu --metrics gpu__time_duration.sum --csv` around three calls (benchmarks/lstm_study.py
--eager, or `torch` here). ncu serializes kernels and fixes clocks, so its durations are longer than a graph
replay's; the count of kernels per call and where the time goes are what it shows. The `torch` mode needs only
PyTorch: an LSTM(192 -> 64) and Dense 64 -> 32 -> 16 -> 1 of the origin's shapes, with PyTorch's own weights
(the kernels it launches do not depend on their values).
"""
import collections
import csv
import io
import sys

CALLS = 3


def torch_calls(batch):
    import torch
    lstm = torch.nn.LSTM(192, 64, batch_first=True).cuda().half()
    dense = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 1), torch.nn.Sigmoid()).cuda().half()
    x = torch.zeros(batch, 11, 192, device="cuda", dtype=torch.half)
    with torch.no_grad():
        for _ in range(CALLS):
            y, _ = lstm(x)
            dense(y[:, -1])
    torch.cuda.synchronize()


def kernels(path):
    """(name, ns) of each kernel of the last call in an ncu CSV of CALLS alike calls: the last 1/CALLS of the rows.
    One-time kernels of the first call (PyTorch's launches one) come first and stay out while they are fewer
    than CALLS."""
    with open(path) as f:
        text = f.read()
    rows = [row for row in csv.DictReader(io.StringIO(text[text.index('"ID"'):]))
            if row["Metric Name"] == "gpu__time_duration.sum"]
    last = rows[len(rows) - len(rows) // CALLS:]
    return [(row["Kernel Name"], float(row["Metric Value"].replace(",", ""))) for row in last]


def table(path):
    found = kernels(path)
    count, total = collections.Counter(), collections.defaultdict(float)
    for name, ns in found:
        short = name.split("(")[0][:70]
        count[short] += 1
        total[short] += ns
    lines = ["%s: %d kernels in one call, %.1f us under ncu" % (path, len(found), sum(ns for _, ns in found) / 1000),
             "", "| kernels | name | us under ncu |", "|---|---|---|"]
    lines += ["| %d | `%s` | %.1f |" % (count[name], name, total[name] / 1000) for name, _ in count.most_common()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1] == "torch":
        torch_calls(int(sys.argv[2]))
    else:
        print("\n".join(table(path) for path in sys.argv[2:]))
