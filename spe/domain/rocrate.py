"""The provenance of a release as a Five Safes RO-Crate (RO-Crate 1.1 + the 5s-crate 0.4
profile): what was released, which reviewed workflow made it from which datasets, what the
automatic checks found and what each reviewer decided.

``release_crate`` returns the ``ro-crate-metadata.json`` content as a flattened JSON-LD
dict; it leaves the enclave with the files, so it carries check messages (never their
details) and names, never data. Votes and findings about files outside the release, if
passed, are left out so every reference resolves; ``validate_crate`` checks that.

What the crate says is built here (``CrateContent``); the RO-Crate document itself (the
context, the metadata descriptor, the root dataset and its ``hasPart``) is made by a
``CrateWriter``: ro-crate-py in ``spe.adapters.rocrate_writer``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

CONTEXT = "https://w3id.org/ro/crate/1.1/context"
# schema.org's sha256 postdates the 1.1 context: declared so JSON-LD processors keep it
EXTRA_TERMS = {"sha256": "http://schema.org/sha256"}
RO_CRATE = "https://w3id.org/ro/crate/1.1"
FIVE_SAFES = "https://w3id.org/5s-crate/0.4"
DESCRIPTOR = "ro-crate-metadata.json"
ROOT = "./"
SERVICE = "#spe-airlock"
DECISIONS = ("approve", "request_changes", "reject")
COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"
MEDIA_TYPES = {"csv": "text/csv", "tsv": "text/tab-separated-values", "txt": "text/plain",
               "json": "application/json", "png": "image/png", "pdf": "application/pdf",
               "svg": "image/svg+xml"}
_SHA256 = re.compile(r"[0-9a-f]{64}")

Entity = dict[str, Any]


@dataclass(frozen=True)
class CrateContent:
    """What a crate says. ``root``: the root dataset's properties (not ``hasPart``);
    ``files``: each data file's path and properties, its ``@id`` being ``file_id(path)``;
    ``entities``: the contextual entities, each with its ``@id``; ``profiles``: what the
    metadata descriptor ``conformsTo``; ``extra_terms``: added to the JSON-LD context."""

    root: Entity
    files: list[tuple[str, Entity]]
    entities: list[Entity]
    profiles: tuple[str, ...] = (RO_CRATE, FIVE_SAFES)
    extra_terms: tuple[tuple[str, str], ...] = tuple(EXTRA_TERMS.items())


class CrateWriter(Protocol):
    """Makes the RO-Crate 1.1 metadata document (flattened JSON-LD) of ``content``;
    ValueError when a file's ``@id`` would not be ``file_id(path)``."""

    def write(self, content: CrateContent) -> dict[str, Any]: ...


def file_id(path: str) -> str:
    return quote(path, safe="/")


def ref(id_: str) -> dict[str, str]:
    return {"@id": id_}


def refs(ids: Iterable[str]) -> list[dict[str, str]]:
    return [ref(i) for i in ids]


def _frag(kind: str, name: str) -> str:
    return f"#{kind}-{quote(name, safe='@.:_-')}"


def media_type(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    return MEDIA_TYPES.get(ext, "application/octet-stream")


def release_crate(writer: CrateWriter, *, request_id: str, run_id: str, workflow_id: str,
                  workflow_version: str, bundle_digest: str, datasets: list[str],
                  requester: str, project: str,
                  justification: str, files: list[dict[str, Any]],
                  findings: list[dict[str, Any]], votes: list[dict[str, Any]],
                  decided_at: str, released_at: str) -> dict[str, Any]:
    """The crate of one release. ``files``: ``{path, size, sha256}``; ``findings``: the
    automatic checks' findings as dicts; ``votes``: ``{reviewer, path, decision, reason,
    at}``. Raises ValueError on a malformed file entry or an unknown decision."""
    file_ids = {f["path"]: _file_id(f) for f in files}
    if len(file_ids) != len(files):
        raise ValueError("a file is listed twice")
    workflow = _frag("workflow", f"{workflow_id}@{workflow_version}")
    ids = list(file_ids.values())
    actions = [_run(run_id, workflow, datasets, requester, ids),
               *_check_actions(findings, file_ids),
               *_vote_actions(votes, file_ids),
               _release(request_id, decided_at, released_at, ids)]
    reviewers = dict.fromkeys(str(v["reviewer"]) for v in votes if v["reviewer"] != requester)
    entities: list[Entity] = [
        {"@id": workflow, "@type": ["SoftwareSourceCode", "ComputationalWorkflow"],
         "name": f"{workflow_id}@{workflow_version}", "version": workflow_version,
         "identifier": bundle_digest},
        *({"@id": _frag("dataset", d), "@type": "Dataset", "name": d, "identifier": d}
          for d in dict.fromkeys(datasets)),
        {"@id": _frag("person", requester), "@type": "Person", "name": requester,
         "memberOf": ref(_frag("project", project))},
        *({"@id": _frag("person", p), "@type": "Person", "name": p} for p in reviewers),
        {"@id": _frag("project", project), "@type": "Project", "name": project,
         "identifier": project},
        {"@id": SERVICE, "@type": "SoftwareApplication", "name": "SPE airlock"},
        *({"@id": _frag("decision", d), "@type": "DefinedTerm", "name": d}
          for d in sorted({str(v["decision"]) for v in votes})),
        {"@id": RO_CRATE, "@type": "CreativeWork", "name": "RO-Crate 1.1"},
        {"@id": FIVE_SAFES, "@type": "CreativeWork",
         "name": "Five Safes RO-Crate profile 0.4"},
        *actions,
    ]
    root = _root(request_id=request_id, run_id=run_id, project=project,
                 justification=justification, released_at=released_at, workflow=workflow,
                 actions=actions)
    return writer.write(CrateContent(root=root, files=[(f["path"], _file(f)) for f in files],
                                     entities=entities))


def _file_id(f: dict[str, Any]) -> str:
    path, size, digest = f.get("path"), f.get("size"), f.get("sha256")
    if not isinstance(path, str) or not path or path.startswith("/") or path == DESCRIPTOR:
        raise ValueError(f"file path {path!r}: a relative path, not the crate's own")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"file {path!r}: size must be a whole number of bytes")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ValueError(f"file {path!r}: sha256 must be 64 lower-case hex digits")
    return file_id(path)


def _root(*, request_id: str, run_id: str, project: str, justification: str, released_at: str,
          workflow: str, actions: list[Entity]) -> Entity:
    return {"conformsTo": ref(FIVE_SAFES),
            "name": f"Release request {request_id}",
            "description": f"Files released through the SPE airlock from run {run_id} of "
                           f"project {project} (release request {request_id}). "
                           f"Justification: {justification}",
            "identifier": request_id, "datePublished": released_at,
            "mainEntity": ref(workflow),
            "sourceOrganization": ref(_frag("project", project)),
            "mentions": refs(a["@id"] for a in actions)}


def _file(f: dict[str, Any]) -> Entity:
    return {"name": f["path"], "contentSize": str(f["size"]),
            "sha256": f["sha256"], "encodingFormat": media_type(f["path"])}


def _run(run_id: str, workflow: str, datasets: list[str], requester: str,
         files: list[str]) -> Entity:
    return {"@id": _frag("run", run_id), "@type": "CreateAction", "name": f"Run {run_id}",
            "identifier": run_id, "instrument": ref(workflow),
            "object": refs(_frag("dataset", d) for d in dict.fromkeys(datasets)),
            "result": refs(files), "agent": ref(_frag("person", requester)),
            "actionStatus": COMPLETED}


def _by_check(findings: list[dict[str, Any]], file_ids: dict[str, str]
              ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Findings by check, in order; those about files outside the release left out."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        if not finding.get("path") or finding["path"] in file_ids:
            groups.setdefault(str(finding["check"]), []).append(finding)
    yield from groups.items()


def _check_actions(findings: list[dict[str, Any]], file_ids: dict[str, str]) -> list[Entity]:
    actions = []
    for check, group in _by_check(findings, file_ids):
        failed = any(g["severity"] == "hard" for g in group)
        flagged = [g for g in group if g["severity"] != "pass"]
        objects = list(dict.fromkeys(file_ids[g["path"]] for g in group if g.get("path")))
        actions.append({
            "@id": _frag("check", check), "@type": "AssessAction",
            "additionalType": "automated check",
            "name": f"Automated check {check}: "
                    f"{'failed' if failed else 'flagged' if flagged else 'passed'}",
            "description": "; ".join(str(g["message"]) for g in flagged or group),
            "object": refs(objects or file_ids.values()),
            "agent": ref(SERVICE), "actionStatus": FAILED if failed else COMPLETED})
    return actions


def _vote_actions(votes: list[dict[str, Any]], file_ids: dict[str, str]) -> list[Entity]:
    actions = []
    for n, vote in enumerate(votes, start=1):
        decision, path = str(vote["decision"]), str(vote.get("path") or "")
        if decision not in DECISIONS:
            raise ValueError(f"vote {n}: decision {decision!r} is not one of {DECISIONS}")
        if path and path not in file_ids:
            continue
        actions.append({
            "@id": f"#review-{n}", "@type": "AssessAction",
            "additionalType": "disclosure review",
            "name": f"Disclosure review of {path or 'the request'}: {decision}",
            "agent": ref(_frag("person", str(vote["reviewer"]))),
            "object": ref(file_ids[path] if path else ROOT),
            "description": str(vote.get("reason") or ""), "endTime": _time(vote["at"]),
            "actionStatus": COMPLETED, "result": ref(_frag("decision", decision))})
    return actions


def _time(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _release(request_id: str, decided_at: str, released_at: str, files: list[str]
             ) -> Entity:
    return {"@id": _frag("release", request_id), "@type": "UpdateAction", "name": "release",
            "description": "Approved files copied from quarantine to the outbox, digests "
                           "verified", "startTime": decided_at, "endTime": released_at,
            "object": refs(files), "agent": ref(SERVICE), "actionStatus": COMPLETED}


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if set(value) == {"@id"}:
            yield str(value["@id"])
        else:
            for v in value.values():
                yield from _references(v)
    elif isinstance(value, list):
        for v in value:
            yield from _references(v)


def validate_crate(crate: dict[str, Any]) -> list[str]:
    """Problems that make the crate invalid for our purposes; [] when it is fine."""
    graph = crate.get("@graph")
    context = crate.get("@context")
    contexts = context if isinstance(context, list) else [context]
    if CONTEXT not in contexts or not isinstance(graph, list):
        return ["not an RO-Crate 1.1 JSON-LD document (@context, @graph)"]
    problems: list[str] = []
    entities: dict[str, Entity] = {}
    for entity in graph:
        id_ = entity.get("@id") if isinstance(entity, dict) else None
        if not isinstance(id_, str) or "@type" not in entity:
            problems.append(f"an entity without @id or @type: {entity!r:.80}")
        elif id_ in entities:
            problems.append(f"{id_}: @id used twice")
        else:
            entities[id_] = entity
    descriptor = entities.get(DESCRIPTOR, {})
    if descriptor.get("about") != ref(ROOT):
        problems.append(f"missing metadata descriptor {DESCRIPTOR} about {ROOT}")
    if ROOT not in entities:
        problems.append("missing root dataset ./")
    for id_, entity in entities.items():
        problems += [f"{id_}: dangling reference to {target}"
                     for target in _references({k: v for k, v in entity.items() if k != "@id"})
                     if target not in entities]
        if "File" in _types(entity) and not _SHA256.fullmatch(str(entity.get("sha256", ""))):
            problems.append(f"{id_}: a File without a sha256")
    return problems


def _types(entity: Entity) -> list[str]:
    types = entity.get("@type", [])
    return [types] if isinstance(types, str) else list(types)
