"""The ``pyengine`` command-line client: a client of the engine API (v1.41) on a unix socket.

Where things are:

- ``main``: the entry point. ``pyengine run`` goes to ``fastrun`` (no click, ~3 ms of imports);
  everything else to ``app``, the click group whose commands are imported only when used.
- ``client``: HTTP/1.1 over ``AF_UNIX`` by hand (keep-alive, chunked bodies, the attach upgrade).
- ``session``: the client for a host (starting the daemon for root on the default socket) and the
  translation of failures into docker's messages and exit statuses.
- ``runner`` + ``create_options``: run/create flags to the create body; create, attach, wait, start.
- ``attach``: frame demultiplexing, raw terminal, resize, signal proxying.
- ``run``, ``containers``, ``listing``, ``images``, ``system``: the click commands.
- ``gotemplate*`` + ``tabwriter`` + ``formatting``: ``--format`` (Go's text/template) and docker's tables.
"""
