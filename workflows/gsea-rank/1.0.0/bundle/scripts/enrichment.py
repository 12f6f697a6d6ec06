"""Enrichment of each gene set in the ranking: weighted KS enrichment score (ES), a
seeded gene-set permutation null of the same size, normalised ES (NES = ES divided by
the mean |null ES| of the same sign), nominal p-value and Benjamini-Hochberg FDR."""

import sys
import time

sys.dont_write_bytecode = True  # keep the workflow folder free of __pycache__
import numpy as np  # noqa: E402

import gsea_core as core  # noqa: E402  (scripts/ is on sys.path for script: rules)

sm = snakemake  # noqa: F821  (injected by Snakemake's script directive)
perms, seed, weight = sm.params.permutations, sm.params.seed, sm.params.weight

started = time.monotonic()
genes, metrics = core.read_ranking(sm.input.ranking)
position = {g: i for i, g in enumerate(genes)}
weights = core.gene_weights(metrics, weight)
n = len(genes)

results = []
for name, _desc, members in core.read_gmt(sm.input.gmt):
    hits = np.zeros(n, dtype=bool)
    hits[[position[g] for g in members]] = True
    curve = core.running_sum(hits, weights)[0]
    es = float(core.enrichment_score(curve)[0])
    null = core.null_scores(n, int(hits.sum()), weights, perms, core.set_rng(seed, name))
    same_sign = null[null >= 0] if es >= 0 else null[null < 0]
    if same_sign.size:
        pvalue = (np.sum(np.abs(same_sign) >= abs(es)) + 1) / (same_sign.size + 1)
        nes = es / np.mean(np.abs(same_sign))
    else:  # no permutation had this sign: the score is as extreme as it gets
        pvalue, nes = 1.0 / (perms + 1), np.nan
    edge = core.leading_edge(hits, curve, es)
    results.append({"set": name, "size": int(hits.sum()), "ES": es, "NES": float(nes),
                    "pvalue": float(pvalue), "edge": [genes[i] for i in edge],
                    "edge_idx": edge})

fdr = core.bh_fdr(np.array([r["pvalue"] for r in results]))
for r, q in zip(results, fdr):
    r["fdr"] = float(q)
# Most significant first; among equally significant sets (permutation p-values share a
# floor of 1/(permutations+1)) the larger |NES| comes first.
results.sort(key=lambda r: (r["fdr"],
                            -abs(r["NES"]) if np.isfinite(r["NES"]) else -np.inf, r["set"]))

def num(x, fmt):
    return "" if not np.isfinite(x) else format(x, fmt)

with open(sm.output.table, "w", encoding="utf-8") as fh:
    fh.write("set,size,ES,NES,pvalue,fdr,leading_edge_size\n")
    for r in results:
        fh.write(f"{r['set']},{r['size']},{num(r['ES'], '.4f')},{num(r['NES'], '.4f')},"
                 f"{num(r['pvalue'], '.4g')},{num(r['fdr'], '.4g')},{len(r['edge'])}\n")
with open(sm.output.leading_edge, "w", encoding="utf-8") as fh:
    fh.write("set\tgene\trank\tmetric\n")
    for r in results:
        for gene, i in zip(r["edge"], r["edge_idx"]):
            fh.write(f"{r['set']}\t{gene}\t{i + 1}\t{metrics[i]:.6g}\n")

with open(sm.log[0], "w", encoding="utf-8") as log:
    print(f"{len(results)} sets x {perms} permutations (seed {seed}, weight {weight}) "
          f"over {n} genes in {time.monotonic() - started:.2f} s", file=log)
    for r in results[:5]:
        print(f"  {r['set']}: NES {r['NES']:.3f} p {r['pvalue']:.4g} FDR {r['fdr']:.4g}",
              file=log)
