"""``python -m pyengine.registry serve --addr HOST:PORT --root DIR``."""

from pyengine.registry.cli import registry

registry(prog_name="python -m pyengine.registry")
