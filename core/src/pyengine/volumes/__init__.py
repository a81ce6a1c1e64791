"""Volumes and container mounts: the volume service, mount planning, copy-up, Docker volume plugins."""
