"""GSEA-style plot of the top set in results/enrichment.csv: running enrichment score,
the positions of the set's genes in the ranking, and the ranked metric."""

import csv
import sys

sys.dont_write_bytecode = True  # keep the workflow folder free of __pycache__
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import gsea_core as core  # noqa: E402  (scripts/ is on sys.path for script: rules)

sm = snakemake  # noqa: F821  (injected by Snakemake's script directive)

with open(sm.input.table, newline="", encoding="utf-8") as fh:
    top = next(csv.DictReader(fh))
genes, metrics = core.read_ranking(sm.input.ranking)
members = next(m for name, _d, m in core.read_gmt(sm.input.gmt) if name == top["set"])
position = {g: i for i, g in enumerate(genes)}
hits = np.zeros(len(genes), dtype=bool)
hits[[position[g] for g in members]] = True
curve = core.running_sum(hits, core.gene_weights(metrics, sm.params.weight))[0]
es = float(core.enrichment_score(curve)[0])
peak = int(np.argmax(curve) if es >= 0 else np.argmin(curve))
x = np.arange(1, len(genes) + 1)

fig, (ax1, ax2, ax3) = plt.subplots(
    3, 1, sharex=True, figsize=(7, 5.6), dpi=120,
    gridspec_kw={"height_ratios": [3, 0.6, 1.6], "hspace": 0.05})
ax1.plot(x, curve, color="tab:green", linewidth=1.6)
ax1.axhline(0, color="grey", linewidth=0.8)
ax1.axvline(peak + 1, color="tab:red", linestyle="--", linewidth=0.9)
ax1.annotate(f"ES = {es:.3f}", xy=(peak + 1, curve[peak]),
             xytext=(6, 6 if es >= 0 else -14), textcoords="offset points",
             color="tab:red", fontsize="small",
             bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"})
ax1.margins(y=0.12)
ax1.set_ylabel("Running enrichment score")
nes = top["NES"] or "n/a"
ax1.set_title(f"{top['set']}  (n={top['size']}, NES={nes}, p={top['pvalue']}, "
              f"FDR={top['fdr']})", fontsize="medium")
ax1.grid(alpha=0.3)

ax2.vlines(x[hits], 0, 1, color="black", linewidth=0.7)
ax2.set_yticks([])
ax2.set_ylim(0, 1)

ax3.fill_between(x, metrics, 0, where=metrics >= 0, color="tab:red", alpha=0.6, linewidth=0)
ax3.fill_between(x, metrics, 0, where=metrics < 0, color="tab:blue", alpha=0.6, linewidth=0)
ax3.axhline(0, color="grey", linewidth=0.8)
ax3.set_ylabel("Ranking metric")
ax3.set_xlabel("Rank in ordered gene list")
ax3.set_xlim(1, len(genes))
fig.subplots_adjust(left=0.12, right=0.97, top=0.93, bottom=0.09)
# no tEXt chunk ("Software"): the airlock refuses PNG text chunks, which can hide data
fig.savefig(sm.output[0], metadata={"Software": None})

with open(sm.log[0], "w", encoding="utf-8") as log:
    print(f"plotted {top['set']} ({int(hits.sum())} genes, peak at rank {peak + 1})", file=log)
