"""Building images from a Dockerfile: parser adapter, context, cache, executor."""
