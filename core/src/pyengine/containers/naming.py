"""Finding containers by full ID, name, or unique ID prefix, as Docker does."""

from __future__ import annotations

from pyengine.errors import NotFound
from pyengine.model.container import Container


class ContainerIndex:
    def __init__(self) -> None:
        self._by_id: dict[str, Container] = {}
        self._by_name: dict[str, Container] = {}

    def add(self, container: Container) -> None:
        self._by_id[container.Id] = container
        self._by_name[container.Name] = container

    def remove(self, container: Container) -> None:
        self._by_id.pop(container.Id, None)
        if self._by_name.get(container.Name) is container:
            del self._by_name[container.Name]

    def rename(self, container: Container, new_name: str) -> None:
        self._by_name.pop(container.Name, None)
        container.Name = new_name
        self._by_name[new_name] = container

    def by_id(self, container_id: str) -> Container | None:
        return self._by_id.get(container_id)

    def by_name(self, name: str) -> Container | None:
        return self._by_name.get(name.lstrip("/"))

    def all(self) -> list[Container]:
        return list(self._by_id.values())

    def find(self, name_or_id: str) -> Container:
        """Full ID, then exact name, then unique ID prefix; else 404 ``No such container: X``."""
        if not name_or_id:
            raise NotFound("No such container: ")
        found = self._by_id.get(name_or_id) or self._by_name.get(name_or_id.lstrip("/"))
        if found is not None:
            return found
        matches = [c for cid, c in self._by_id.items() if cid.startswith(name_or_id)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"No such container: {name_or_id}")
