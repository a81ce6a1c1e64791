"""The container supervisor: one long-lived, single-threaded process that starts and watches every
container, apart from the daemon (which must never fork and may die and come back at any time).

- :mod:`pyengine.supervisor.server` — the process (``python -m pyengine.supervisor``) and its requests;
- :mod:`pyengine.supervisor.container` — one container's run: stdio, log, attach fan-out, exit;
- :mod:`pyengine.supervisor.exec_process` — one process exec'd into a running container;
- :mod:`pyengine.supervisor.protocol` — the wire format (JSON lines, attach frames);
- :mod:`pyengine.supervisor.client` — the asyncio client the daemon uses, and ``ensure_supervisor``.
"""
