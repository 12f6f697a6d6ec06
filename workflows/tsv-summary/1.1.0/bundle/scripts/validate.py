"""Validate and clean a cohort TSV: every expected column present, rows with a missing
or non-numeric value in any used column dropped (and counted). Messages name columns
and counts, never a value read from the input (docs/catalog.md, review rules)."""

import csv
import json
import math

MISSING = {"", "na", "nan", "null", "none", "."}

sm = snakemake  # noqa: F821  (injected by Snakemake's script directive)
id_col = sm.params.id_column
categorical = list(sm.params.categorical)
numeric = list(sm.params.numeric)
wanted = [id_col, *categorical, *numeric]

with open(sm.input[0], newline="", encoding="utf-8") as fh:
    reader = csv.DictReader(fh, delimiter="\t")
    header = reader.fieldnames or []
    absent = [c for c in wanted if c not in header]
    if absent:
        # never echo the header: in a non-conforming file it is the first record
        raise ValueError(f"the input lacks {len(absent)} of the columns this workflow "
                         f"needs ({', '.join(wanted)}); is it a tab-separated table "
                         "with a header row?")
    rows = list(reader)

kept, dropped_by_column, dropped_ids, seen = [], {c: 0 for c in wanted}, [], set()
duplicates = 0
for row in rows:
    problems = []
    for col in wanted:
        value = (row.get(col) or "").strip()
        if value.lower() in MISSING:
            problems.append(col)
        elif col in numeric:
            try:
                if not math.isfinite(float(value)):
                    problems.append(col)
            except ValueError:
                problems.append(col)
    sid = (row.get(id_col) or "").strip()
    if not problems and sid in seen:
        duplicates += 1
        problems.append(id_col)
    if problems:
        for col in problems:
            dropped_by_column[col] += 1
        dropped_ids.append(sid or "?")
        continue
    seen.add(sid)
    kept.append({c: row[c].strip() for c in wanted})

if not kept:
    raise ValueError(f"no complete rows left after cleaning ({len(rows)} read)")

with open(sm.output.clean, "w", newline="", encoding="utf-8") as fh:
    writer = csv.DictWriter(fh, fieldnames=wanted, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept)

report = {
    "rows_in": len(rows),
    "rows_kept": len(kept),
    "rows_dropped": len(rows) - len(kept),
    "dropped_by_column": {c: n for c, n in dropped_by_column.items() if n},
    "duplicate_ids": duplicates,
    "dropped_sample_ids": dropped_ids,
}
with open(sm.output.report, "w", encoding="utf-8") as fh:
    json.dump(report, fh, indent=2)
    fh.write("\n")

with open(sm.log[0], "w", encoding="utf-8") as log:
    print(f"read {len(rows)} rows, kept {len(kept)}, dropped {len(rows) - len(kept)} "
          f"(by column: {report['dropped_by_column']})", file=log)
