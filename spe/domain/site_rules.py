"""The rules of a site profile that its JSON Schema cannot express (bibigrid/sites/*.yaml).

Each rule reads the merged document (the profile with its ``bibigrid`` mapping merged over
the base configuration) and yields a ``Problem`` per violation, pointing at the value with
an RFC 6901 JSON pointer. The document has already passed the schema, so shapes are known.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

SECRET_REF = re.compile(r"^\$\{(?:env:(?P<env>[A-Za-z_][A-Za-z0-9_]*)|file:(?P<file>/[^}\s]+))\}$")
SPE_ROLE = "spe_cluster"
SECRET_KEYS = ("db_password", "munge_key")
REQUIRED_MODES = {"work": ("project_mode", "2770"), "quarantine": ("mode", "2750")}


@dataclass(frozen=True)
class Problem:
    pointer: str
    message: str


def escape(token: str | int) -> str:
    """One reference token of a JSON pointer (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def _bib(doc: dict[str, Any]) -> dict[str, Any]:
    bib: dict[str, Any] = doc["bibigrid"]
    return bib


def _instances(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    bib = _bib(doc)
    if isinstance(bib.get("masterInstance"), dict):
        yield "/bibigrid/masterInstance", bib["masterInstance"]
    for i, worker in enumerate(bib.get("workerInstances") or []):
        yield f"/bibigrid/workerInstances/{i}", worker


def master_without_public_ip(doc: dict[str, Any]) -> Iterator[Problem]:
    bib = _bib(doc)
    if bib.get("useMasterWithPublicIp", True) is not False:
        yield Problem("/bibigrid/useMasterWithPublicIp",
                      "must be False: the master is reached through the gateway or jump host, "
                      "never a floating IP (BiBiGrid's default is True)")
    if "floatingIpId" in bib:
        yield Problem("/bibigrid/floatingIpId", "the master must not get a floating IP")


def subnet_xor_network(doc: dict[str, Any]) -> Iterator[Problem]:
    bib = _bib(doc)
    if "subnet" in bib and "network" in bib:
        yield Problem("/bibigrid/network", "give subnet or network, not both (BiBiGrid refuses)")
    elif "subnet" not in bib and "network" not in bib:
        yield Problem("/bibigrid/subnet", "required: the project's subnet (or network)")


def _world(prefix: str) -> bool | None:
    try:
        return ipaddress.ip_network(prefix, strict=False).prefixlen == 0
    except ValueError:
        return None


def _prefix_problem(pointer: str, prefix: str) -> Iterator[Problem]:
    world = _world(prefix)
    if world is None:
        yield Problem(pointer, f"{prefix!r} is not an IP network")
    elif world:
        yield Problem(pointer, f"{prefix} opens the port to the whole internet; name the "
                      "gateway, reverse proxy or cluster network instead")


def no_ports_open_to_the_world(doc: dict[str, Any]) -> Iterator[Problem]:
    spe = doc["spe"]
    if "ssh_ingress_cidr" in spe:
        yield from _prefix_problem("/spe/ssh_ingress_cidr", spe["ssh_ingress_cidr"])
    for i, group in enumerate(spe.get("security_groups") or []):
        for j, rule in enumerate(group.get("rules") or []):
            ptr = f"/spe/security_groups/{i}/rules/{j}"
            if "remote_ip_prefix" in rule:
                yield from _prefix_problem(f"{ptr}/remote_ip_prefix", rule["remote_ip_prefix"])
            elif rule["direction"] == "ingress" and "remote_group" not in rule:
                yield Problem(ptr, "an ingress rule without remote_ip_prefix or remote_group "
                              "is open to 0.0.0.0/0 in OpenStack")


def security_groups_described(doc: dict[str, Any]) -> Iterator[Problem]:
    described = {g["name"] for g in doc["spe"].get("security_groups") or []}
    owners = [("/bibigrid", _bib(doc)), *_instances(doc)]
    for ptr, owner in owners:
        for k, name in enumerate(owner.get("securityGroups") or []):
            if name not in described:
                yield Problem(f"{ptr}/securityGroups/{k}",
                              f"security group {name!r} is not described in "
                              "/spe/security_groups (its rules must be reviewed)")


def secrets_are_references(doc: dict[str, Any]) -> Iterator[Problem]:
    conf = _bib(doc).get("slurmConf") or {}
    for key in SECRET_KEYS:
        ptr = f"/bibigrid/slurmConf/{key}"
        value = conf.get(key)
        if value is None:
            yield Problem(ptr, "required: a secret reference ${env:NAME} or ${file:/path} "
                          "(BiBiGrid's default would be used otherwise)")
        elif not SECRET_REF.match(value):
            yield Problem(ptr, "a literal value is refused: reference the site's secret "
                          "store with ${env:NAME} or ${file:/path}")


def nfs_shares(doc: dict[str, Any]) -> Iterator[Problem]:
    bib, shares = _bib(doc), doc["spe"]["shares"]
    if bib.get("nfs") is not True:
        yield Problem("/bibigrid/nfs", "must be True: data, work and quarantine are NFS shares")
    exported = {str(p).rstrip("/") for p in bib.get("nfsShares") or []}
    for name, share in shares.items():
        if share["path"] not in exported:
            yield Problem(f"/spe/shares/{name}/path",
                          f"{share['path']} is not listed in /bibigrid/nfsShares")
    for name, share in shares.items():
        for other, outer in shares.items():
            if other != name and (share["path"] + "/").startswith(outer["path"] + "/"):
                yield Problem(f"/spe/shares/{name}/path",
                              f"must not lie inside (or equal) the {other} share")


def _mode(text: str) -> int:
    return int(text, 8)


def _writable_by_others(share: dict[str, Any], key: str) -> bool:
    return key in share and bool(_mode(share[key]) & 0o002)


def share_modes(doc: dict[str, Any]) -> Iterator[Problem]:
    spe = doc["spe"]
    shares = spe["shares"]
    for name, share in shares.items():
        for key in ("mode", "project_mode"):
            if _writable_by_others(share, key):
                yield Problem(f"/spe/shares/{name}/{key}",
                              "world-writable is refused (BiBiGrid's default is 0777)")
    for name, (key, wanted) in REQUIRED_MODES.items():
        if shares[name].get(key) != wanted:
            yield Problem(f"/spe/shares/{name}/{key}", f"must be \"{wanted}\"")
    yield from _data_read_only(shares["data"])
    yield from _quarantine_owner(shares["quarantine"], spe["service_account"])


def _data_read_only(data: dict[str, Any]) -> Iterator[Problem]:
    if data.get("readonly") is not True:
        yield Problem("/spe/shares/data/readonly", "must be True: data is read-only")
    for key in ("mode", "project_mode"):
        if key in data and _mode(data[key]) & 0o022:
            yield Problem(f"/spe/shares/data/{key}", "must not be writable by group or others")


def _quarantine_owner(share: dict[str, Any], account: dict[str, Any]) -> Iterator[Problem]:
    for key in ("owner", "group"):
        wanted = account["name"] if key == "owner" else account["group"]
        if share[key] != wanted:
            yield Problem(f"/spe/shares/quarantine/{key}",
                          f"must be the service's {key} {wanted!r}: only the service reads it")


def on_demand_workers(doc: dict[str, Any]) -> Iterator[Problem]:
    bib = _bib(doc)
    elastic = any(w.get("onDemand") is True for w in bib.get("workerInstances") or [])
    if not elastic:
        yield Problem("/bibigrid/workerInstances",
                      "at least one worker group needs onDemand: True (elastic workers)")
    elif bib.get("dontUploadCredentials") is True:
        yield Problem("/bibigrid/dontUploadCredentials",
                      "True prevents on-demand scheduling: the master needs the credential to "
                      "start workers")


def images_and_flavours(doc: dict[str, Any]) -> Iterator[Problem]:
    for ptr, instance in _instances(doc):
        for key in ("type", "image"):
            if not str(instance.get(key) or "").strip():
                yield Problem(f"{ptr}/{key}", "must name the site's "
                              + ("flavour" if key == "type" else "image"))
        try:
            re.compile(str(instance.get("image") or ""))
        except re.error as exc:
            yield Problem(f"{ptr}/image", f"not a valid regular expression: {exc}")


def volumes(doc: dict[str, Any]) -> Iterator[Problem]:
    for ptr, instance in _instances(doc):
        for v, volume in enumerate(instance.get("volumes") or []):
            flags = [k for k in ("permanent", "semiPermanent", "exists") if volume.get(k)]
            if len(flags) > 1:
                yield Problem(f"{ptr}/volumes/{v}", f"at most one of {flags} may be True "
                              "(BiBiGrid refuses)")
            if volume.get("exists") and not volume.get("name"):
                yield Problem(f"{ptr}/volumes/{v}/name", "exists: True needs the volume's name")


def spe_role_listed(doc: dict[str, Any]) -> Iterator[Problem]:
    hosts: set[str] = set()
    for role in _bib(doc).get("userRoles") or []:
        if any(r["name"] == SPE_ROLE for r in role["roles"]):
            hosts |= set(role["hosts"])
    missing = sorted({"master", "workers"} - hosts)
    if missing:
        yield Problem("/bibigrid/userRoles",
                      f"the {SPE_ROLE} role must run on master and workers (missing: {missing})")


def isolation(doc: dict[str, Any]) -> Iterator[Problem]:
    bib = _bib(doc)
    if bib.get("useMasterAsCompute", True) is not False:
        yield Problem("/bibigrid/useMasterAsCompute", "must be False: research jobs must not "
                      "run beside the service and the quarantine")
    if bib.get("ide") is True:
        yield Problem("/bibigrid/ide", "a web IDE on the master is a shell into the enclave")
    if bib.get("slurm") is False:
        yield Problem("/bibigrid/slurm", "must not be False: runs are SLURM jobs")


def project_gids(doc: dict[str, Any]) -> Iterator[Problem]:
    spe = doc["spe"]
    taken = {spe["service_account"].get("gid")}
    for group, gid in (spe.get("project_gids") or {}).items():
        if gid in taken:
            yield Problem(f"/spe/project_gids/{escape(group)}", f"gid {gid} is used twice")
        taken.add(gid)


Rule = Callable[[dict[str, Any]], Iterator[Problem]]
RULES: tuple[Rule, ...] = (
    master_without_public_ip, subnet_xor_network, no_ports_open_to_the_world,
    security_groups_described, secrets_are_references, nfs_shares, share_modes,
    on_demand_workers, images_and_flavours, volumes, spe_role_listed, isolation, project_gids,
)


def check(doc: dict[str, Any]) -> list[Problem]:
    """Every rule's problems, in rule order."""
    return [problem for rule in RULES for problem in rule(doc)]
