"""Summarise a numeric column by a group column: n, mean, sd, median, min, max."""

import csv
from collections import defaultdict

import numpy as np

sm = snakemake  # noqa: F821  (injected by Snakemake's script directive)
group_col, value_col = sm.params.group, sm.params.value

groups = defaultdict(list)
with open(sm.input[0], newline="", encoding="utf-8") as fh:
    for row in csv.DictReader(fh, delimiter="\t"):
        groups[row[group_col]].append(float(row[value_col]))

def fmt(x):
    return "" if x is None or not np.isfinite(x) else f"{x:.3f}"

with open(sm.output[0], "w", newline="", encoding="utf-8") as fh:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow([group_col, "variable", "n", "mean", "sd", "median", "min", "max"])
    for name in sorted(groups):
        v = np.asarray(groups[name])
        sd = float(np.std(v, ddof=1)) if v.size > 1 else None
        writer.writerow([name, value_col, v.size, fmt(v.mean()), fmt(sd),
                         fmt(float(np.median(v))), fmt(v.min()), fmt(v.max())])

with open(sm.log[0], "w", encoding="utf-8") as log:
    print(f"summarised {value_col} over {len(groups)} {group_col} group(s): "
          + ", ".join(f"{k}={len(groups[k])}" for k in sorted(groups)), file=log)
