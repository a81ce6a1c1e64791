"""A registry server of our own: the OCI distribution API over aiohttp, stored on a file system.

``pyengine registry serve --addr 127.0.0.1:5000 --root DIR`` (or ``python -m pyengine.registry``).

- :mod:`.names`: repository names, tags and digests as the distribution spec defines them
- :mod:`.errors`: the spec's error codes, each with its HTTP status and JSON body
- :mod:`.storage`: content-addressed blobs, repositories as link files (tags, layers, manifests)
- :mod:`.uploads`: blob uploads in progress (streamed, chunked, resumable), verified on completion
- :mod:`.manifests`: validation of pushed manifests and indexes
- :mod:`.auth`: htpasswd (bcrypt) basic auth
- :mod:`.routes`: HTTP <-> storage; :mod:`.server`: the app, TLS, serving
- :mod:`.cli`: the click command

Nothing here imports the daemon's engine: the server runs alone, with aiohttp and the blob store.
"""
