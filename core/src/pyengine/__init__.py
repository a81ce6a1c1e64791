"""pyengine: build, ship and run containers; a Docker-compatible engine as a plugin microkernel."""

__version__ = "0.1.0"
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
