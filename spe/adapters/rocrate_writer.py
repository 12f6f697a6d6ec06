"""The RO-Crate metadata document of a release, made by ro-crate-py (``rocrate``).

Nothing touches the disk: the crate is built in memory (``ROCrate(version="1.1")``), the
released files are added as data entities by their path only (the airlock never has them
on local disk: they sit in object stores), and ``metadata.generate()`` gives the
flattened JSON-LD that the outbox stores beside the files. What the crate says (the Five
Safes content) comes from ``spe.domain.rocrate``.
"""

from __future__ import annotations

from typing import Any

from spe.domain.rocrate import CrateContent, file_id


class RoCrateWriter:
    """The ``CrateWriter`` port on ro-crate-py."""

    def write(self, content: CrateContent) -> dict[str, Any]:
        # imported at the first release, not at start-up: ro-crate-py and what it imports
        # (jinja2 for its preview, ...) cost a serving process several MiB
        from rocrate.model.contextentity import ContextEntity  # noqa: PLC0415
        from rocrate.rocrate import ROCrate  # noqa: PLC0415

        crate = ROCrate(version="1.1")
        crate.metadata.extra_terms.update(dict(content.extra_terms))
        crate.metadata["conformsTo"] = [{"@id": profile} for profile in content.profiles]
        for name, value in content.root.items():
            crate.root_dataset[name] = value
        for path, properties in content.files:
            entity = crate.add_file(dest_path=path, properties=dict(properties))
            if entity.id != file_id(path):  # ro-crate-py normalised the path
                raise ValueError(f"file path {path!r} is not in normal form")
        for entity in content.entities:
            properties = {k: v for k, v in entity.items() if k != "@id"}
            crate.add(ContextEntity(crate, entity["@id"], properties=properties))
        document: dict[str, Any] = crate.metadata.generate()
        return document
