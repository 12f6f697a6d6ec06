"""Box plot of the value column per group with jittered points and group sizes."""

import csv
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

UNITS = {"age": "years", "bmi": "kg/m²", "sbp": "mmHg", "crp": "mg/L"}
LABELS = {"age": "Age", "bmi": "BMI", "sbp": "Systolic blood pressure", "crp": "CRP",
          "site": "Site", "sex": "Sex", "smoking": "Smoking status"}

sm = snakemake  # noqa: F821  (injected by Snakemake's script directive)
group_col, value_col = sm.params.group, sm.params.value

groups = defaultdict(list)
with open(sm.input.clean, newline="", encoding="utf-8") as fh:
    for row in csv.DictReader(fh, delimiter="\t"):
        groups[row[group_col]].append(float(row[value_col]))
ORDER = {"smoking": ["never", "former", "current"]}  # natural order where there is one
names = sorted(groups, key=lambda n: (ORDER.get(group_col, []).index(n)
                                      if n in ORDER.get(group_col, []) else 99, n))
data = [np.asarray(groups[n]) for n in names]

fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
ax.boxplot(data, widths=0.55, showfliers=False, medianprops={"color": "black"})
ax.set_xticks(range(1, len(names) + 1), [f"{n}\n(n={len(d)})" for n, d in zip(names, data)])
rng = np.random.default_rng(0)  # fixed jitter: the same input gives the same picture
for i, d in enumerate(data, start=1):
    ax.scatter(i + rng.uniform(-0.15, 0.15, d.size), d, s=9, alpha=0.45, color="tab:blue",
               linewidths=0)
    ax.plot(i, d.mean(), marker="D", color="tab:red", markersize=5, zorder=3)
label = LABELS.get(value_col, value_col)
ax.set_ylabel(f"{label} ({UNITS[value_col]})" if value_col in UNITS else label)
ax.set_xlabel(LABELS.get(group_col, group_col))
title = sm.params.title or f"{label} by {LABELS.get(group_col, group_col).lower()}"
ax.set_title(title)
ax.plot([], [], marker="D", color="tab:red", linestyle="none", label="mean")
ax.legend(loc="best", frameon=False, fontsize="small")
ax.grid(axis="y", alpha=0.3)
fig.tight_layout()
# no tEXt chunk ("Software"): the airlock refuses PNG text chunks, which can hide data
fig.savefig(sm.output[0], metadata={"Software": None})

with open(sm.log[0], "w", encoding="utf-8") as log:
    print(f"plotted {sum(d.size for d in data)} points in {len(names)} group(s)", file=log)
