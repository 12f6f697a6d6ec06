"""Weighted Kolmogorov-Smirnov enrichment statistics shared by the enrichment and plot
rules (Subramanian et al. 2005, PNAS 102:15545; pre-ranked form). numpy only.

Snakemake puts this folder on ``sys.path`` for ``script:`` rules, so the rule scripts
``import gsea_core``."""

from __future__ import annotations

import zlib

import numpy as np


def read_ranking(path: str) -> tuple[list[str], np.ndarray]:
    """Genes and metrics of ``results/ranking.tsv`` (already sorted, descending)."""
    genes, metrics = [], []
    with open(path, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            if line.strip():
                _, gene, metric = line.rstrip("\n").split("\t")
                genes.append(gene)
                metrics.append(float(metric))
    return genes, np.asarray(metrics, dtype=float)


def read_gmt(path: str) -> list[tuple[str, str, list[str]]]:
    with open(path, encoding="utf-8") as fh:
        return [(f[0], f[1], f[2:]) for f in (ln.rstrip("\n").split("\t") for ln in fh if ln.strip())]


def gene_weights(metrics: np.ndarray, weight: float) -> np.ndarray:
    """|r_j|^p; p = 0 is the classic (unweighted) Kolmogorov-Smirnov statistic."""
    return np.abs(metrics) ** weight


def running_sum(hits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Running enrichment score(s). ``hits`` is a boolean vector (n,) or matrix (p, n)."""
    hits = np.atleast_2d(hits)
    n = hits.shape[1]
    k = hits.sum(axis=1, keepdims=True)
    hit_w = np.where(hits, weights, 0.0)
    norm = hit_w.sum(axis=1, keepdims=True)
    # If every hit has weight 0 (metric 0 with p > 0), fall back to equal hit weights.
    hit_w = np.where(norm > 0, hit_w, hits.astype(float))
    norm = np.where(norm > 0, norm, k)
    p_hit = np.cumsum(hit_w, axis=1) / norm
    p_miss = np.cumsum(~hits, axis=1) / np.maximum(n - k, 1)
    return p_hit - p_miss


def enrichment_score(curves: np.ndarray) -> np.ndarray:
    """The signed maximum deviation from zero of each running-sum curve."""
    curves = np.atleast_2d(curves)
    hi, lo = curves.max(axis=1), curves.min(axis=1)
    return np.where(hi >= -lo, hi, lo)


def null_scores(n: int, k: int, weights: np.ndarray, permutations: int,
                rng: np.random.Generator, chunk: int = 500) -> np.ndarray:
    """Enrichment scores of ``permutations`` random gene sets of size ``k``."""
    out = np.empty(permutations)
    for start in range(0, permutations, chunk):
        p = min(chunk, permutations - start)
        picks = rng.random((p, n)).argpartition(k - 1, axis=1)[:, :k]
        hits = np.zeros((p, n), dtype=bool)
        np.put_along_axis(hits, picks, True, axis=1)
        out[start:start + p] = enrichment_score(running_sum(hits, weights))
    return out


def set_rng(seed: int, name: str) -> np.random.Generator:
    """One generator per (seed, set name): a set's p-value does not depend on which
    other sets were tested or in what order."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def leading_edge(hits: np.ndarray, curve: np.ndarray, es: float) -> np.ndarray:
    """Indices (in rank order) of the set's genes that drive the enrichment score."""
    idx = np.flatnonzero(hits)
    if es >= 0:
        return idx[idx <= int(np.argmax(curve))]
    return idx[idx >= int(np.argmin(curve))]


def bh_fdr(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out
