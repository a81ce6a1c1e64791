"""Containers' lives under the supervisor: exits, signals, events, restarts, failures, and the
supervisor carrying on without (or despite) its clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from pyengine.errors import Conflict, InvalidArgument, NotFound, StartFailed, Unavailable
from pyengine.supervisor.client import SupervisorClient, ensure_supervisor, ping, read_frame
from pyengine.supervisor.protocol import encode_message
from supervisor_harness import children_of, joined, read_frames, rss_bytes, run, wait_until


def test_an_exit_is_reported_in_events_state_and_the_exit_file(supervisor):
    async def next_events(events, count):
        return [await anext(events) for _ in range(count)]

    async def scenario():
        first, second = supervisor.client.events(), supervisor.client.events()
        # An events() generator connects on its first step: take both first steps concurrently.
        first_task = asyncio.ensure_future(next_events(first, 2))
        second_task = asyncio.ensure_future(next_events(second, 2))
        while not _events_connected(supervisor, 2):
            await asyncio.sleep(0.01)
        cid = await supervisor.create(["sh", "-c", "exit 7"])
        started = await supervisor.start(cid)
        seen = await first_task, await second_task
        await first.aclose()
        await second.aclose()
        return cid, started, seen

    cid, started, (first, second) = run(scenario())
    assert first == second
    assert first[0] == {"event": "start", "id": cid, "pid": started["pid"]}
    assert {key: first[1][key] for key in ("event", "id", "exit_code")} == {
        "event": "exit",
        "id": cid,
        "exit_code": 7,
    }
    state = run(supervisor.client.state(cid))
    assert state["status"] == "exited" and state["exit_code"] == 7 and state["pid"] == 0
    assert state["finished_at"] == first[1]["finished_at"]
    assert supervisor.exit_record(cid) == {
        "exit_code": 7,
        "finished_at": state["finished_at"],
        "oom_killed": False,
    }


def _events_connected(supervisor, count: int) -> bool:
    """Whether the supervisor has ``count`` event clients: its sockets beyond the listener (call it
    while no other client is connected)."""
    sockets = [
        link
        for link in os.listdir(f"/proc/{supervisor.pid}/fd")
        if os.readlink(f"/proc/{supervisor.pid}/fd/{link}").startswith("socket:")
    ]
    return len(sockets) >= count + 1


def test_a_killed_container_exits_with_128_plus_the_signal(supervisor):
    async def scenario():
        cid = await supervisor.create(["sleep", "1000"])
        await supervisor.start(cid)
        assert (await supervisor.client.state(cid))["status"] == "running"
        reader, _ = await supervisor.client.attach(cid)
        await supervisor.client.signal(cid, signal.SIGKILL)
        await read_frames(reader)  # ends once the exit is recorded
        with pytest.raises(Conflict):
            await supervisor.client.signal(cid, "KILL")
        return await supervisor.client.state(cid)

    assert run(scenario())["exit_code"] == 128 + signal.SIGKILL


def test_a_start_failure_is_reported_as_start_failed(supervisor):
    async def scenario():
        cid = await supervisor.create(["/no/such/program"])
        with pytest.raises(StartFailed, match="/no/such/program"):
            await supervisor.start(cid)
        return await supervisor.client.state(cid)

    state = run(scenario())
    assert state["status"] == "created" and state["pid"] == 0


def test_a_terminal_the_bundle_does_not_ask_for_is_a_start_failure(supervisor):
    async def scenario():
        bundle = supervisor.bundle(["sleep", "1000"], terminal=False)
        log_path = str(supervisor.tmp_path / "mismatch.log")
        await supervisor.client.create("mismatch", bundle, log_path=log_path, tty=True)
        with pytest.raises(StartFailed, match="disagrees"):
            await supervisor.start("mismatch")
        return await supervisor.client.state("mismatch")

    assert run(scenario())["status"] == "created"
    # The process the runtime started anyway was killed and reaped, not left behind.
    assert children_of(supervisor.pid) == []


def test_a_restart_appends_to_the_same_log_and_attach_follows_the_new_run(supervisor):
    async def scenario():
        cid = await supervisor.create(["echo", "a run"])
        reader, _ = await supervisor.client.attach(cid)
        await supervisor.start(cid)
        assert await read_frames(reader) == [(1, b"a run\n")]
        # An attach to an exited container ends at once, unless it waits for the next start.
        reader, _ = await supervisor.client.attach(cid)
        assert await read_frame(reader) is None
        reader, _ = await supervisor.client.attach(cid, wait_start=True)
        await supervisor.start(cid)
        return cid, await read_frames(reader)

    cid, frames = run(scenario())
    assert frames == [(1, b"a run\n")]
    assert [record["log"] for record in supervisor.log_records(cid)] == ["a run\n", "a run\n"]


def test_create_delete_and_their_conflicts(supervisor):
    async def scenario():
        client = supervisor.client
        cid = await supervisor.create(["sleep", "1000"])
        bundle = str(supervisor.tmp_path / "bundle-1")
        with pytest.raises(Conflict):
            await client.create(cid, bundle, log_path="/tmp/unused.log")
        await supervisor.start(cid)
        with pytest.raises(Conflict):
            await supervisor.start(cid)
        with pytest.raises(Conflict):
            await client.delete(cid)
        reader, _ = await client.attach(cid)
        await client.signal(cid, "SIGKILL")
        await read_frames(reader)
        assert supervisor.exit_record(cid) is not None
        await client.delete(cid)
        assert supervisor.exit_record(cid) is None
        with pytest.raises(NotFound):
            await client.state(cid)
        assert await client.list() == []
        await client.create(cid, bundle, log_path=str(supervisor.tmp_path / "again.log"))
        assert [state["id"] for state in await client.list()] == [cid]

    run(scenario())


def test_malformed_requests_are_invalid_arguments(supervisor):
    async def scenario():
        client = supervisor.client
        with pytest.raises(InvalidArgument, match="unknown op"):
            await client.request("explode")
        with pytest.raises(InvalidArgument, match="log_path"):
            await client.request("create", id="x", bundle="/b")
        with pytest.raises(InvalidArgument, match="invalid container id"):
            await client.create("../escape", "/b", log_path="/tmp/x.log")
        with pytest.raises(NotFound):
            await client.signal("nobody", 9)
        assert await client.ping() == supervisor.pid

    run(scenario())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(supervisor.socket)
        raw.sendall(b"not json\n" + encode_message({"op": "ping"}))
        answers = raw.makefile("rb")
        assert json.loads(answers.readline())["kind"] == "InvalidArgument"
        assert json.loads(answers.readline()) == {"ok": True, "pid": supervisor.pid}


CLIENT = textwrap.dedent("""
    import socket, sys
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sys.argv[1])
    sock.sendall(b'{"op": "attach", "id": "%s", "stdout": true, "stderr": true}\\n')
    sock.recv(100)
    print("attached", flush=True)
    while sock.recv(65536):
        pass
""")


def test_killing_a_client_mid_stream_does_not_disturb_the_container(supervisor):
    go = supervisor.flag_path("go")
    script = f"while [ ! -e {go} ]; do echo tick; sleep 0.01; done; echo done"
    cid = run(supervisor.create(["sh", "-c", script]))
    client = subprocess.Popen([sys.executable, "-c", CLIENT % cid, supervisor.socket], stdout=subprocess.PIPE)
    try:
        assert client.stdout.readline() == b"attached\n"
        run(supervisor.start(cid))
        wait_until(lambda: len(supervisor.log_records(cid)) >= 5, "some output")
        client.kill()
        client.wait()
    finally:
        client.kill()
        client.wait()
        client.stdout.close()

    async def scenario():
        assert (await supervisor.client.state(cid))["status"] == "running"
        reader, _ = await supervisor.client.attach(cid)
        assert await reader.readexactly(13) == b"\x01\x00\x00\x00\x00\x00\x00\x05tick\n"
        supervisor.raise_flag("go")
        return await read_frames(reader)

    frames = run(scenario())
    assert joined(frames, 1).endswith(b"done\n")
    assert supervisor.exit_record(cid)["exit_code"] == 0


def test_containers_run_and_exits_are_recorded_while_no_client_is_connected(supervisor):
    go = supervisor.flag_path("go")
    script = f"while [ ! -e {go} ]; do sleep 0.01; done; echo done; exit 3"
    cid = run(supervisor.create(["sh", "-c", script]))
    run(supervisor.start(cid))  # every request closes its connection when answered
    supervisor.raise_flag("go")
    wait_until(lambda: supervisor.exit_record(cid) is not None, "the exit record")
    assert supervisor.exit_record(cid)["exit_code"] == 3
    assert [record["log"] for record in supervisor.log_records(cid)] == ["done\n"]
    assert run(supervisor.client.state(cid))["exit_code"] == 3


def test_sigterm_stops_the_supervisor_and_leaves_containers_running(supervisor):
    cid = run(supervisor.create(["sleep", "1000"]))
    pid = run(supervisor.start(cid))["pid"]
    supervisor.process.terminate()
    supervisor.process.wait(10)
    assert not os.path.exists(supervisor.socket)
    os.kill(pid, 0)  # still there
    with pytest.raises(Unavailable):
        run(supervisor.client.ping())


def test_many_idle_containers_add_little_memory_to_the_supervisor(supervisor):
    count = 50

    async def scenario():
        ids = [await supervisor.create(["sleep", "1000"], open_stdin=True) for _ in range(count)]
        attached = [await supervisor.client.attach(cid, stdin=True) for cid in ids]
        await supervisor.start(ids[0])  # the first start loads what every start needs
        before = rss_bytes(supervisor.pid)
        for cid in ids[1:]:
            await supervisor.start(cid)
        after = rss_bytes(supervisor.pid)
        states = await supervisor.client.list()
        for _, writer in attached:
            writer.close()
        return before, after, states

    before, after, states = run(scenario())
    assert sum(state["status"] == "running" for state in states) == count
    per_container = (after - before) / (count - 1)
    print(
        f"\nsupervisor RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB for {count - 1} more "
        f"idle containers (stdin open, one attach each): {per_container / 1024:.1f} KiB per container"
    )
    assert per_container < 0.9 * 2**20


def test_ensure_supervisor_starts_one_and_then_finds_it(tmp_path):
    socket_path = str(tmp_path / "s.sock")
    state_dir = str(tmp_path / "state")
    pid = ensure_supervisor(socket_path, state_dir)
    try:
        assert ping(socket_path) == pid
        assert ensure_supervisor(socket_path, state_dir) == pid
        assert run(SupervisorClient(socket_path).ping()) == pid
        assert os.getsid(pid) == pid  # its own session: the daemon's end does not reach it
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


def test_every_descriptor_of_the_supervisor_is_close_on_exec(supervisor):
    """Nothing the supervisor holds (sockets, pipes, pidfds, logs, ptys) may leak into a container."""

    async def scenario():
        cid = await supervisor.create(["cat"], open_stdin=True)
        tty_cid = await supervisor.create(["cat"], tty=True, open_stdin=True)
        attached = [await supervisor.client.attach(c, stdin=True) for c in (cid, tty_cid)]
        events = supervisor.client.events()
        waiting = asyncio.ensure_future(anext(events))
        await supervisor.start(cid)
        await supervisor.start(tty_cid)
        await waiting
        fds = os.listdir(f"/proc/{supervisor.pid}/fdinfo")
        leaking = []
        for fd in fds:
            with open(f"/proc/{supervisor.pid}/fdinfo/{fd}") as info:
                flags = int(next(line for line in info if line.startswith("flags:")).split()[1], 8)
            if int(fd) > 2 and not flags & os.O_CLOEXEC:
                leaking.append((fd, os.readlink(f"/proc/{supervisor.pid}/fd/{fd}")))
        for c in (cid, tty_cid):
            await supervisor.client.signal(c, "KILL")
        for _, writer in attached:
            writer.close()
        await events.aclose()
        return len(fds), leaking

    count, leaking = run(scenario())
    assert count > 10  # listener, wakeup pipe, epoll, pid file, 2 pidfds, stdio ends, logs, clients
    assert leaking == []


def test_a_burst_of_concurrent_requests_is_served(supervisor):
    """Regression: 200 requests at once overflowed a listen backlog of 128, and asyncio's connect
    then failed with ENOTCONN."""

    async def scenario():
        ids = [await supervisor.create(["true"]) for _ in range(200)]
        return await asyncio.gather(*(supervisor.client.state(cid) for cid in ids))

    states = run(scenario())
    assert [state["status"] for state in states] == ["created"] * 200


def test_orphans_of_a_container_in_our_pid_namespace_are_reaped(supervisor):
    """Without its own pid namespace, a container's orphans come to the supervisor (a subreaper);
    they must not stay zombies. The orphan also keeps the output pipe open: the exit is still
    recorded, after the drain grace."""

    async def scenario():
        cid = await supervisor.create(["sh", "-c", "sleep 1000 & echo $!"], host_pid=True)
        reader, _ = await supervisor.client.attach(cid)
        await supervisor.start(cid)
        frames = await read_frames(reader)
        return cid, int(joined(frames, 1))

    cid, orphan = run(scenario())
    supervisor.container_pids.add(orphan)
    assert supervisor.exit_record(cid)["exit_code"] == 0
    with open(f"/proc/{orphan}/status") as status:
        assert f"PPid:\t{supervisor.pid}\n" in status.read()
    os.kill(orphan, signal.SIGKILL)
    wait_until(lambda: not os.path.exists(f"/proc/{orphan}"), "the orphan to be reaped")
