"""The overlay storage driver for pyengine: kernel overlayfs over per-layer diff directories."""

from pyengine_storage_overlay.driver import OverlayDriver

__all__ = ["OverlayDriver"]
