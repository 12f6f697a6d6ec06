"""Clean a ranked gene list (columns gene, metric): drop missing or non-finite metrics,
keep one row per gene (the one with the largest |metric|), sort by metric descending."""

import csv
import json
import math

sm = snakemake  # noqa: F821  (injected by Snakemake's script directive)

rows_in, missing, best = 0, 0, {}
with open(sm.input[0], newline="", encoding="utf-8") as fh:
    reader = csv.DictReader(fh, delimiter="\t")
    if not {"gene", "metric"} <= set(reader.fieldnames or []):
        raise ValueError(f"{sm.input[0]}: need columns 'gene' and 'metric', "
                         f"found {reader.fieldnames}")
    for row in reader:
        rows_in += 1
        gene = (row["gene"] or "").strip()
        try:
            metric = float(row["metric"])
        except (TypeError, ValueError):
            metric = math.nan
        if not gene or not math.isfinite(metric):
            missing += 1
            continue
        if gene not in best or abs(metric) > abs(best[gene]):
            best[gene] = metric

duplicates = rows_in - missing - len(best)
ranked = sorted(best.items(), key=lambda gm: (-gm[1], gm[0]))  # ties broken by name
with open(sm.output.ranking, "w", encoding="utf-8") as fh:
    fh.write("rank\tgene\tmetric\n")
    for i, (gene, metric) in enumerate(ranked, start=1):
        fh.write(f"{i}\t{gene}\t{metric:.6g}\n")

report = {"rows_in": rows_in, "missing_metric": missing, "duplicate_genes": duplicates,
          "genes_ranked": len(ranked),
          "positive": sum(m > 0 for _, m in ranked), "negative": sum(m < 0 for _, m in ranked)}
with open(sm.output.report, "w", encoding="utf-8") as fh:
    json.dump(report, fh, indent=2)
    fh.write("\n")
with open(sm.log[0], "w", encoding="utf-8") as log:
    print(json.dumps(report), file=log)
