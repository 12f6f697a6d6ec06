"""Read a GMT file, keep members present in the ranking and sets whose size (after
that) is within [min_size, max_size]. Writes the kept sets and a per-set report."""

sm = snakemake  # noqa: F821  (injected by Snakemake's script directive)
lo, hi = sm.params.min_size, sm.params.max_size

with open(sm.input.ranking, encoding="utf-8") as fh:
    next(fh)
    ranked = {line.split("\t")[1] for line in fh if line.strip()}

kept, report, seen = [], [], set()
with open(sm.input.gmt, encoding="utf-8") as fh:
    for lineno, line in enumerate(fh, start=1):
        fields = line.rstrip("\r\n").split("\t")
        if not line.strip():
            continue
        if len(fields) < 3:
            raise ValueError(f"{sm.input.gmt}:{lineno}: a GMT line needs name, description "
                             "and at least one gene")
        name, desc = fields[0].strip(), fields[1].strip()
        if name in seen:
            raise ValueError(f"{sm.input.gmt}:{lineno}: duplicate gene set {name}")
        seen.add(name)
        members = list(dict.fromkeys(g.strip() for g in fields[2:] if g.strip()))
        present = [g for g in members if g in ranked]
        if len(present) < lo:
            status = f"excluded: fewer than {lo} ranked genes"
        elif len(present) > hi:
            status = f"excluded: more than {hi} ranked genes"
        else:
            status = "tested"
            kept.append((name, desc, present))
        report.append((name, len(members), len(present), status))

if not kept:
    raise ValueError(f"no gene set has between {lo} and {hi} ranked genes; "
                     "adjust min_set_size / max_set_size")

with open(sm.output.gmt, "w", encoding="utf-8") as fh:
    for name, desc, present in kept:
        fh.write("\t".join([name, desc, *present]) + "\n")
with open(sm.output.report, "w", encoding="utf-8") as fh:
    fh.write("set\tsize_in_file\tsize_ranked\tstatus\n")
    for row in report:
        fh.write("\t".join(map(str, row)) + "\n")
with open(sm.log[0], "w", encoding="utf-8") as log:
    print(f"{len(report)} sets read, {len(kept)} tested "
          f"(size bounds {lo}..{hi})", file=log)
