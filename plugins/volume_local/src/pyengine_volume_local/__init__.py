"""The local volume driver for pyengine (entry point ``pyengine.volume.v1: local``)."""
