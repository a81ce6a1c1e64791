"""Registration: the driver's options, what it can do, and the factory pyengine calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pyengine.errors import InvalidArgument

from pyengine_storage_template.driver import TemplateDriver

#: Optional features beyond the required interface, for people reading ``docker info``-like listings,
#: e.g. "native-diff", "quota". The core goes by the interfaces the driver class inherits
#: (pyengine.drivers.storage.NativeDiff, Quota), so keep the two in agreement.
CAPABILITIES: frozenset[str] = frozenset()


class TemplateOptions(BaseModel):
    """``--storage-opt template.NAME=VALUE`` options; unknown names are refused."""

    model_config = ConfigDict(extra="forbid")


def factory(root: Path, options: dict[str, Any] | None = None) -> TemplateDriver:
    """Make the driver for ``root``. Raise pyengine.errors.NotSupported (with the reason) when
    this host cannot run it: automatic driver selection then moves on to the next driver."""
    raw = {key.removeprefix("template."): value for key, value in (options or {}).items()}
    try:
        TemplateOptions.model_validate(raw)
    except ValidationError as exc:
        raise InvalidArgument(f"invalid template storage options: {exc}") from exc
    return TemplateDriver(Path(root))
