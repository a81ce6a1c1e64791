"""Containers: their lifecycle, the OCI bundle the runtime consumes, their files and logs."""
