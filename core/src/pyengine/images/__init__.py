"""Images: references, the image store (import, tag, remove, inspect), and their Docker JSON shapes."""
