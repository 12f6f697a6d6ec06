"""A GA4GH TES 1.1 task as the service accepts it: parsed and checked at the edge, before
anything is stored. Every refusal names the field (a JSON pointer) and the rule.

Container paths. Images are read-only; a task may only name paths below the mount points
every catalogued image carries (``MOUNT_POINTS``: ``spe image import`` creates them). Each
mount point a task uses is a folder of the task's ``work/`` bound into every executor, so
``volumes`` and everything below those folders are shared between executors in order."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from spe.domain.errors import InvalidRequest

MOUNT_POINTS = ("data", "inputs", "outputs", "work", "scratch", "mnt", "tmp")
QUARANTINE_URL = "quarantine:///"
LOGS = "_logs"  # spe.domain.jobdir.LOG_PREFIX: the quarantine's folder of logs
MAX_CONTENT_BYTES = 256 * 1024  # the spec asks for at least 128 KiB
MAX_EXECUTORS, MAX_FILES, MAX_ENV, MAX_ARGS = 20, 500, 100, 1000
MAX_NAME, MAX_TEXT, MAX_ARG = 255, 4096, 16384
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 50, 128, 256
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
GLOB_CHARS = frozenset("*?[")
Errors = list[tuple[str, str]]


@dataclass(frozen=True)
class TaskInput:
    path: str
    url: str = ""
    content: str | None = None
    type: str = "FILE"
    name: str = ""
    description: str = ""
    streamable: bool | None = None


@dataclass(frozen=True)
class TaskOutput:
    path: str
    url: str
    type: str = "FILE"
    path_prefix: str = ""
    name: str = ""
    description: str = ""

    @property
    def key(self) -> str:
        """Where in the task's quarantine the output goes (a file, or a folder)."""
        return self.url[len(QUARANTINE_URL):].strip("/")

    @property
    def wildcard(self) -> bool:
        return any(c in GLOB_CHARS for c in self.path)


@dataclass(frozen=True)
class TaskExecutor:
    image: str
    command: tuple[str, ...]
    workdir: str = ""
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    env: dict[str, str] = field(default_factory=dict)
    ignore_error: bool = False


@dataclass(frozen=True)
class TaskResources:
    cpu_cores: int | None = None
    ram_gb: float | None = None
    disk_gb: float | None = None
    preemptible: bool | None = None
    zones: tuple[str, ...] = ()
    backend_parameters: dict[str, str] = field(default_factory=dict)
    backend_parameters_strict: bool = False


@dataclass(frozen=True)
class TaskRequest:
    """A TES ``tesTask`` as created (no id, state or logs: the service sets those)."""

    executors: tuple[TaskExecutor, ...]
    name: str = ""
    description: str = ""
    inputs: tuple[TaskInput, ...] = ()
    outputs: tuple[TaskOutput, ...] = ()
    resources: TaskResources | None = None
    volumes: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)


def mount_point(path: str) -> str:
    """The mount point a (checked) container path lies under."""
    return path.strip("/").split("/", 1)[0]


def path_problem(path: Any, *, glob: bool = False, folder: bool = False) -> str:
    """Why ``path`` is not a container path a task may name, or "" (a ``folder``, such as a
    working directory or a volume, may be a mount point itself)."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    parts = path.strip("/").split("/")
    checks = (
        (len(path) > 1024 or not path.startswith("/"),
         "must be an absolute path of at most 1024 characters"),
        (any(ord(c) < 32 or c == "\\" for c in path),
         "must not hold control characters or backslashes"),
        (any(p in ("", ".", "..") for p in parts) or posixpath.normpath(path) != path,
         "must be a normalised path (no '.', '..' or '//')"),
        (not glob and any(c in GLOB_CHARS for c in path),
         "wildcards are only allowed in output paths"),
        (parts[0] not in MOUNT_POINTS or (len(parts) < 2 and not folder and parts[0] != "tmp"),
         "must lie below one of the task mount points "
         f"{', '.join('/' + m for m in MOUNT_POINTS)} (images are read-only)"),
    )
    return next((why for failed, why in checks if failed), "")


def _text(body: dict[str, Any], name: str, pointer: str, errors: Errors,
          limit: int = MAX_TEXT) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        errors.append((f"{pointer}/{name}", f"must be a string of at most {limit} characters"))
        return ""
    return value


def _flag(body: dict[str, Any], name: str, pointer: str, errors: Errors) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        errors.append((f"{pointer}/{name}", "must be true or false"))
        return None
    return value


def _objects(body: dict[str, Any], name: str, errors: Errors,
             limit: int) -> list[tuple[str, dict[str, Any]]]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        errors.append((f"/{name}", f"must be a list of at most {limit} objects"))
        return []
    items = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            items.append((f"/{name}/{i}", item))
        else:
            errors.append((f"/{name}/{i}", "must be an object"))
    return items


def _file_type(body: dict[str, Any], pointer: str, errors: Errors) -> str:
    value = body.get("type") or "FILE"
    if value not in ("FILE", "DIRECTORY"):
        errors.append((f"{pointer}/type", "must be FILE or DIRECTORY"))
    return str(value)


def _input(pointer: str, body: dict[str, Any], errors: Errors) -> TaskInput:
    path = body.get("path")
    if problem := path_problem(path):
        errors.append((f"{pointer}/path", problem))
    content = body.get("content")
    if content is not None and (not isinstance(content, str)
                                or len(content.encode()) > MAX_CONTENT_BYTES):
        errors.append((f"{pointer}/content",
                       f"must be a string of at most {MAX_CONTENT_BYTES} bytes (UTF-8)"))
        content = None
    url = _text(body, "url", pointer, errors, 2048)
    kind = _file_type(body, pointer, errors)
    if content is None and not url:
        errors.append((pointer, "an input needs a url or content"))
    if content is not None and kind != "FILE":
        errors.append((f"{pointer}/type", "an input with content is a FILE"))
    return TaskInput(path=str(path), url="" if content is not None else url,
                     content=content, type=kind,
                     name=_text(body, "name", pointer, errors, MAX_NAME),
                     description=_text(body, "description", pointer, errors),
                     streamable=_flag(body, "streamable", pointer, errors))


def _output(pointer: str, body: dict[str, Any], errors: Errors) -> TaskOutput:
    path = body.get("path")
    if problem := path_problem(path, glob=True):
        errors.append((f"{pointer}/path", problem))
    url = body.get("url")
    key = url[len(QUARANTINE_URL):].strip("/") if isinstance(url, str) else ""
    if key == LOGS or key.startswith(LOGS + "/"):
        errors.append((f"{pointer}/url", f"{QUARANTINE_URL}{LOGS}/ is reserved for the "
                                         "executors' logs"))
    if not isinstance(url, str) or not url.startswith(QUARANTINE_URL) \
            or path_problem("/data/" + key):
        errors.append((f"{pointer}/url", "outputs go only to the task's quarantine: "
                                         f"{QUARANTINE_URL}<relative path> (they leave "
                                         "the enclave only through the airlock)"))
        url = QUARANTINE_URL
    prefix = _text(body, "path_prefix", pointer, errors, 1024)
    out = TaskOutput(path=str(path), url=str(url), type=_file_type(body, pointer, errors),
                     path_prefix=prefix,
                     name=_text(body, "name", pointer, errors, MAX_NAME),
                     description=_text(body, "description", pointer, errors))
    if out.wildcard and (not prefix or not str(path).startswith(prefix)):
        errors.append((f"{pointer}/path_prefix", "required with wildcards: a prefix of path"))
    if out.wildcard and out.type != "FILE":
        errors.append((f"{pointer}/type", "a wildcard output matches files"))
    return out


def _strings(value: Any, pointer: str, errors: Errors, limit: int,
             each: int = MAX_ARG) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > limit or not all(
            isinstance(v, str) and len(v) <= each and "\0" not in v for v in value):
        errors.append((pointer, f"must be a list of at most {limit} strings"))
        return ()
    return tuple(value)


def _env(value: Any, pointer: str, errors: Errors) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_ENV:
        errors.append((pointer, f"must map at most {MAX_ENV} names to strings"))
        return {}
    bad = [k for k, v in value.items() if not ENV_NAME.match(k) or not isinstance(v, str)
           or len(v) > MAX_ARG or "\0" in v]
    for k in bad[:10]:
        errors.append((f"{pointer}/{k[:64]}", "a variable name ([A-Za-z_][A-Za-z0-9_]*) "
                                              "mapped to a string"))
    return {} if bad else dict(value)


def _executor(pointer: str, body: dict[str, Any], errors: Errors) -> TaskExecutor:
    image = body.get("image")
    if not isinstance(image, str) or not image or len(image) > MAX_NAME:
        errors.append((f"{pointer}/image", "required: an image name of the image catalog"))
        image = ""
    command = _strings(body.get("command"), f"{pointer}/command", errors, MAX_ARGS)
    if not command and not any(p == f"{pointer}/command" for p, _ in errors):
        errors.append((f"{pointer}/command", "required: a non-empty list of strings"))
    paths = {}
    for name in ("workdir", "stdin", "stdout", "stderr"):
        value = _text(body, name, pointer, errors, 1024)
        if value and (problem := path_problem(value, folder=name == "workdir")):
            errors.append((f"{pointer}/{name}", problem))
        paths[name] = value
    return TaskExecutor(image=str(image), command=command,
                        env=_env(body.get("env"), f"{pointer}/env", errors),
                        ignore_error=bool(_flag(body, "ignore_error", pointer, errors)),
                        **paths)


def _number(body: dict[str, Any], name: str, errors: Errors, *,
            integer: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or (integer and not isinstance(value, int)) or value > 1e7:
        kind = "a non-negative integer" if integer else "a non-negative number"
        errors.append((f"/resources/{name}", f"must be {kind}"))
        return None
    return value


def _resources(body: Any, errors: Errors) -> TaskResources | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        errors.append(("/resources", "must be an object"))
        return None
    params = body.get("backend_parameters") or {}
    if not isinstance(params, dict) or len(params) > 50 or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 256
            for k, v in params.items()):
        errors.append(("/resources/backend_parameters", "must map at most 50 keys to strings"))
        params = {}
    zones = body.get("zones")
    return TaskResources(
        cpu_cores=_number(body, "cpu_cores", errors, integer=True),
        ram_gb=_number(body, "ram_gb", errors), disk_gb=_number(body, "disk_gb", errors),
        preemptible=_flag(body, "preemptible", "/resources", errors),
        zones=_strings(zones, "/resources/zones", errors, 20, 128) if zones is not None
        else (),
        backend_parameters={k.lower(): v for k, v in params.items()},
        backend_parameters_strict=bool(_flag(body, "backend_parameters_strict",
                                             "/resources", errors)))


def _tags(value: Any, errors: Errors) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_TAGS or not all(
            isinstance(k, str) and 0 < len(k) <= MAX_TAG_KEY and isinstance(v, str)
            and len(v) <= MAX_TAG_VALUE and not any(ord(c) < 32 for c in k)
            for k, v in value.items()):
        errors.append(("/tags", f"must map at most {MAX_TAGS} keys (1-{MAX_TAG_KEY} "
                                f"characters) to strings of at most {MAX_TAG_VALUE}"))
        return {}
    return dict(value)


def parse_task(body: Any) -> TaskRequest:
    """The task in a ``POST /tasks`` body; ``InvalidRequest`` listing every problem.
    Fields the service sets (id, state, logs, creation_time) are ignored, as TES says."""
    if not isinstance(body, dict):
        raise InvalidRequest("the task must be a JSON object", [("", "not an object")])
    errors: Errors = []
    executors = [_executor(p, b, errors) for p, b in
                 _objects(body, "executors", errors, MAX_EXECUTORS)]
    if not executors and not any(p.startswith("/executors") for p, _ in errors):
        errors.append(("/executors", "required: at least one executor"))
    inputs = [_input(p, b, errors) for p, b in _objects(body, "inputs", errors, MAX_FILES)]
    outputs = [_output(p, b, errors) for p, b in _objects(body, "outputs", errors, MAX_FILES)]
    volumes = _strings(body.get("volumes", []), "/volumes", errors, 50, 1024)
    for i, volume in enumerate(volumes):
        if problem := path_problem(volume, folder=True):
            errors.append((f"/volumes/{i}", problem))
    task = TaskRequest(executors=tuple(executors), inputs=tuple(inputs),
                       outputs=tuple(outputs), volumes=volumes,
                       name=_text(body, "name", "", errors, MAX_NAME),
                       description=_text(body, "description", "", errors),
                       resources=_resources(body.get("resources"), errors),
                       tags=_tags(body.get("tags"), errors))
    if errors:
        raise InvalidRequest("the task cannot be accepted", errors[:50])
    return task


def _drop_empty(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v not in (None, "", [], {}, ())}


def to_document(task: TaskRequest) -> dict[str, Any]:
    """The task in TES field names (what is stored, and what ``parse_task`` reads back);
    unset fields are left out."""
    res = task.resources
    body: dict[str, Any] = {
        "name": task.name, "description": task.description,
        "inputs": [_drop_empty({"name": i.name, "description": i.description, "url": i.url,
                                "path": i.path, "type": i.type, "content": i.content,
                                "streamable": i.streamable}) | (
                                    {"content": i.content} if i.content == "" else {})
                   for i in task.inputs],
        "outputs": [_drop_empty({"name": o.name, "description": o.description, "url": o.url,
                                 "path": o.path, "path_prefix": o.path_prefix,
                                 "type": o.type}) for o in task.outputs],
        "executors": [_drop_empty({"image": e.image, "command": list(e.command),
                                   "workdir": e.workdir, "stdin": e.stdin,
                                   "stdout": e.stdout, "stderr": e.stderr, "env": e.env,
                                   "ignore_error": e.ignore_error or None})
                      for e in task.executors],
        "volumes": list(task.volumes), "tags": dict(task.tags),
    }
    if res is not None:
        body["resources"] = _drop_empty({
            "cpu_cores": res.cpu_cores, "ram_gb": res.ram_gb, "disk_gb": res.disk_gb,
            "preemptible": res.preemptible, "zones": list(res.zones),
            "backend_parameters": res.backend_parameters,
            "backend_parameters_strict": res.backend_parameters_strict or None})
    return _drop_empty(body) | {"executors": body["executors"]}
