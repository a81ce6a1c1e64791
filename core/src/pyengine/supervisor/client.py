"""The daemon's side of the supervisor: an asyncio client, and ``ensure_supervisor`` to start one.

Each request uses its own connection (a unix-socket connect is cheap, and a stream op keeps its
connection anyway). Errors come back as the :mod:`pyengine.errors` class the supervisor named;
:class:`~pyengine.errors.Unavailable` means no supervisor answers on the socket.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pyengine
from pyengine import errors
from pyengine.supervisor.protocol import FRAME_HEADER, encode_message

_ERROR_KINDS = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, errors.EngineError)
}
# Answers such as ``list`` grow with the number of containers; the default 64 KiB line limit is too low.
# Streams keep asyncio's default, which also bounds what is read ahead of a slow consumer.
_ANSWER_LIMIT = 16 << 20
_STREAM_LIMIT = 64 << 10
# Requests in flight at once per client: a burst (say a state request per container) must not
# overflow the supervisor's listen backlog, and each request costs a connection while it lasts.
MAX_CONCURRENT_REQUESTS = 64


def _error_from(answer: dict) -> errors.EngineError:
    cls = _ERROR_KINDS.get(answer.get("kind"), errors.EngineError)
    return cls(answer.get("error") or "the supervisor gave no reason")


class SupervisorClient:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._requests = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)

    async def request(self, op: str, **fields) -> dict:
        """Send one request and return the answer (without raising, ``answer["ok"]`` is true)."""
        async with self._requests:
            reader, writer, answer = await self._open(op, fields)
            writer.close()
        return answer

    async def create(
        self,
        id: str,
        bundle: str,
        *,
        log_path: str,
        tty: bool = False,
        open_stdin: bool = False,
        stdin_once: bool = False,
    ) -> None:
        await self.request(
            "create",
            id=id,
            bundle=bundle,
            log_path=log_path,
            tty=tty,
            open_stdin=open_stdin,
            stdin_once=stdin_once,
        )

    async def start(self, id: str) -> dict:
        """Start the container's process; returns ``{"pid": N, "started_at": RFC3339Nano}``."""
        answer = await self.request("start", id=id)
        return {"pid": answer["pid"], "started_at": answer["started_at"]}

    async def signal(self, id: str, signal: int | str) -> None:
        await self.request("signal", id=id, signal=signal)

    async def resize(self, id: str, height: int, width: int) -> None:
        await self.request("resize", id=id, height=height, width=width)

    async def state(self, id: str) -> dict:
        answer = await self.request("state", id=id)
        del answer["ok"]
        return answer

    async def delete(self, id: str) -> None:
        await self.request("delete", id=id)

    async def ping(self) -> int:
        """The supervisor's pid."""
        return (await self.request("ping"))["pid"]

    async def attach(
        self,
        id: str,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        *,
        wait_start: bool = False,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Attach to the container's current run, or to its next start if it has not started yet.

        The reader yields frames (see :func:`read_frame`) until the run ends and its output is
        drained, then EOF. Bytes written go to the container's stdin when ``stdin`` is true;
        ``writer.write_eof()`` closes that stdin if the container was created with ``stdin_once``.
        An exited container's attach ends at once unless ``wait_start`` is true, in which case it
        waits for the next start (``docker start -a`` attaches before it starts).
        """
        reader, writer, _ = await self._open(
            "attach",
            {"id": id, "stdin": stdin, "stdout": stdout, "stderr": stderr, "wait_start": wait_start},
            limit=_STREAM_LIMIT,
        )
        return reader, writer

    async def exec(
        self, id: str, exec_id: str, process: dict, *, open_stdin: bool = False
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
        """Start ``process`` (an OCI process object) in the running container ``id``.

        Returns the stream (frames as for attach; the last one, on ``EXIT_STREAM``, carries
        ``{"exit_code": N}``; bytes written go to its stdin, ``write_eof`` closes it) and the pid.
        Raises Conflict when the container is not running, StartFailed when the process could not
        be started (the message says why).
        """
        reader, writer, answer = await self._open(
            "exec",
            {"id": id, "exec_id": exec_id, "process": process, "open_stdin": open_stdin},
            limit=_STREAM_LIMIT,
        )
        return reader, writer, int(answer["pid"])

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        await self.request("exec_resize", exec_id=exec_id, height=height, width=width)

    async def events(self) -> AsyncIterator[dict]:
        """Yield each event as the supervisor sends it: ``{"event": "start", "id", "pid"}`` and
        ``{"event": "exit", "id", "exit_code", "finished_at"}``. The stream never ends by itself:
        if the connection is lost this raises Unavailable (reconnect and reconcile with ``list``)."""
        reader, writer, _ = await self._open("events", {}, limit=_STREAM_LIMIT)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    raise errors.Unavailable("the container supervisor closed the event stream")
                yield json.loads(line)
        finally:
            writer.close()

    async def list(self) -> builtins.list[dict]:
        """The state of every container the supervisor knows, each with its ``id``."""
        return (await self.request("list"))["containers"]

    async def _open(
        self, op: str, fields: dict, limit: int = _ANSWER_LIMIT
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict]:
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=limit)
        except OSError as exc:
            raise errors.Unavailable(
                f"the container supervisor does not answer on {self.socket_path}: {exc.strerror or exc}"
            ) from exc
        try:
            writer.write(encode_message({"op": op, **fields}))
            line = await reader.readline()
        except (OSError, ValueError) as exc:
            writer.close()
            raise errors.Unavailable(f"lost the container supervisor during {op}: {exc}") from exc
        if not line:
            writer.close()
            raise errors.Unavailable(f"the container supervisor hung up during {op}")
        answer = json.loads(line)
        if not answer.get("ok"):
            writer.close()
            raise _error_from(answer)
        return reader, writer, answer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next attach frame as ``(stream, payload)`` (1 stdout, 2 stderr), or None at the end."""
    try:
        header = await reader.readexactly(FRAME_HEADER.size)
        stream, length = FRAME_HEADER.unpack(header)
        return stream, await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


def ping(socket_path: str, timeout: float = 1.0) -> int | None:
    """The pid of the supervisor answering on ``socket_path``, or None if none answers (sync)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(encode_message({"op": "ping"}))
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                answer += chunk
        return json.loads(answer)["pid"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_supervisor(socket_path: str, state_dir: str, python: str = sys.executable) -> int:
    """Return the pid of the supervisor serving ``socket_path``, starting one if none answers.

    The new supervisor runs in its own session with its output in ``<state_dir>/supervisor.log``,
    so neither the daemon's death nor its terminal touches it. Popen is fork+exec, safe from a
    threaded daemon. Two daemons racing here end up with the same supervisor: the second one
    started finds the pid file locked and exits, and the ping finds the first.
    """
    pid = ping(socket_path)
    if pid is not None:
        return pid
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    log_path = os.path.join(state_dir, "supervisor.log")
    env = dict(os.environ)
    # The supervisor must run the same pyengine as its caller, wherever that was imported from.
    source_root = os.path.dirname(os.path.dirname(os.path.abspath(pyengine.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    command = [python, "-m", "pyengine.supervisor", "--socket", socket_path, "--state-dir", state_dir]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        pid = ping(socket_path)
        if pid is not None:
            return pid
        if process.poll() is not None:
            pid = ping(socket_path)  # lost a race to another caller's supervisor?
            if pid is not None:
                return pid
            raise errors.Unavailable(
                f"the container supervisor exited with status {process.returncode}; see {log_path}"
            )
        time.sleep(0.02)
    raise errors.Unavailable(f"the container supervisor did not answer on {socket_path} within 5 s")
