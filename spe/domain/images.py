"""The image allowlist: HPC container images a task may run, pinned by content digest,
like workflows. A name (``busybox:1.36``) or an alias an operator chose (``alpine``)
names one entry; ``<name>@sha256:<hex>`` names it by digest. Anything else is refused."""

from __future__ import annotations

from dataclasses import dataclass, field

from spe.domain.errors import Forbidden


@dataclass(frozen=True)
class ImageEntry:
    """One catalogued image: ``folder`` is where its root lies in the site's image store."""

    name: str
    tag: str
    digest: str
    folder: str
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"


def normalise(image: str) -> str:
    """``alpine`` -> ``alpine:latest``; a name with a digest or a tag stays as it is."""
    last = image.rsplit("/", 1)[-1]
    return image if "@" in image or ":" in last else f"{image}:latest"


class ImageRefused(Forbidden):
    def __init__(self, message: str) -> None:
        super().__init__(message, rule="image")


@dataclass
class ImageCatalog:
    entries: list[ImageEntry] = field(default_factory=list)

    def resolve(self, image: str) -> ImageEntry:
        wanted = normalise(image)
        name, _, digest = wanted.partition("@")
        for entry in self.entries:
            names = {entry.ref, *(normalise(a) for a in entry.aliases)}
            if digest and entry.digest == digest and (normalise(name) in names
                                                      or name == entry.name):
                return entry
            if not digest and wanted in names:
                return entry
        raise ImageRefused(f"image {image[:200]!r} is not in the image catalog of this "
                           "service (only reviewed images pinned by digest run here)")
