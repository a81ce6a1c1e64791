"""Image distribution: the OCI distribution API client (pull, push, login), Docker's progress stream,
and the docker-save / OCI-layout archives (save, load)."""
