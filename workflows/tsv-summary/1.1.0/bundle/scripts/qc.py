"""Write results/qc.json: the input's checksum, the cleaning counts and the groups."""

import csv
import hashlib
import json

sm = snakemake  # noqa: F821  (injected by Snakemake's script directive)

with open(sm.input.source, "rb") as fh:
    source_sha256 = hashlib.sha256(fh.read()).hexdigest()
with open(sm.input.report, encoding="utf-8") as fh:
    report = json.load(fh)
with open(sm.input.summary, newline="", encoding="utf-8") as fh:
    summary = list(csv.DictReader(fh))

warnings = []
fraction_dropped = report["rows_dropped"] / report["rows_in"] if report["rows_in"] else 0.0
if fraction_dropped > 0.10:
    warnings.append(f"{fraction_dropped:.0%} of rows were dropped for missing values")
small = [r[sm.params.group] for r in summary if int(r["n"]) < 10]
if small:
    warnings.append(f"groups with fewer than 10 rows: {small}")

qc = {
    "input": sm.params.input_name,
    "input_sha256": source_sha256,
    "group_column": sm.params.group,
    "value_column": sm.params.value,
    "rows_in": report["rows_in"],
    "rows_kept": report["rows_kept"],
    "rows_dropped": report["rows_dropped"],
    "fraction_dropped": round(fraction_dropped, 4),
    "dropped_by_column": report["dropped_by_column"],
    "groups": {r[sm.params.group]: int(r["n"]) for r in summary},
    "passed": not warnings,
    "warnings": warnings,
}
with open(sm.output[0], "w", encoding="utf-8") as fh:
    json.dump(qc, fh, indent=2)
    fh.write("\n")

with open(sm.log[0], "w", encoding="utf-8") as log:
    print(f"qc passed={qc['passed']} warnings={warnings}", file=log)
