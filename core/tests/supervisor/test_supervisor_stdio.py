"""A container's stdio through the supervisor: attach frames, stdin, the terminal, the json-file log."""

from __future__ import annotations

import asyncio
import json
import re
import socket

import pytest
from pyengine.errors import Conflict
from pyengine.supervisor.protocol import encode_message
from supervisor_harness import joined, read_frames, run, wait_until

RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


def test_attach_before_start_gets_stdout_and_stderr_as_separate_frames(supervisor):
    async def scenario():
        cid = await supervisor.create(["sh", "-c", "echo out; echo err >&2; echo more"])
        reader, _ = await supervisor.client.attach(cid, stdin=False, stdout=True, stderr=True)
        await supervisor.start(cid)
        return cid, await read_frames(reader)

    cid, frames = run(scenario())
    assert joined(frames, 1) == b"out\nmore\n"
    assert joined(frames, 2) == b"err\n"
    assert {number for number, _ in frames} == {1, 2}


def test_attach_to_stdout_only_gets_no_stderr(supervisor):
    async def scenario():
        cid = await supervisor.create(["sh", "-c", "echo err >&2; echo out"])
        reader, _ = await supervisor.client.attach(cid, stdout=True, stderr=False)
        await supervisor.start(cid)
        return await read_frames(reader)

    assert run(scenario()) == [(1, b"out\n")]


def test_stdin_is_forwarded_and_a_stdin_once_hang_up_ends_cat(supervisor):
    async def scenario():
        cid = await supervisor.create(["cat"], open_stdin=True, stdin_once=True)
        reader, writer = await supervisor.client.attach(cid, stdin=True)
        await supervisor.start(cid)
        writer.write(b"hello\n")
        # cat answers each line before it sees the end of its input.
        first = await reader.readexactly(8 + 6)
        writer.write(b"bye\n")
        writer.write_eof()
        rest = await read_frames(reader)
        return cid, first, rest

    cid, first, rest = run(scenario())
    assert first == b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n"
    assert rest == [(1, b"bye\n")]
    assert run(supervisor.client.state(cid))["exit_code"] == 0


def test_stdin_sent_before_start_reaches_the_process(supervisor):
    async def scenario():
        cid = await supervisor.create(["cat"], open_stdin=True, stdin_once=True)
        reader, writer = await supervisor.client.attach(cid, stdin=True)
        writer.write(b"early\n")
        writer.write_eof()
        await writer.drain()
        await supervisor.start(cid)
        return await read_frames(reader)

    assert run(scenario()) == [(1, b"early\n")]


def test_without_open_stdin_the_process_reads_an_empty_stdin(supervisor):
    async def scenario():
        cid = await supervisor.create(["sh", "-c", "cat; echo cat-ended"])
        reader, writer = await supervisor.client.attach(cid, stdin=True)
        writer.write(b"ignored\n")
        await supervisor.start(cid)
        return await read_frames(reader)

    assert run(scenario()) == [(1, b"cat-ended\n")]


def test_a_terminal_gives_one_stream_of_terminal_bytes_and_follows_resizes(supervisor):
    script = "read line; stty size; echo err >&2; [ -t 0 ] && echo is-a-tty; echo got $line"

    async def scenario():
        cid = await supervisor.create(["sh", "-c", script], tty=True, open_stdin=True)
        reader, writer = await supervisor.client.attach(cid, stdin=True)
        await supervisor.start(cid)
        await supervisor.client.resize(cid, 40, 120)
        writer.write(b"go\n")
        return cid, await read_frames(reader)

    cid, frames = run(scenario())
    assert {number for number, _ in frames} == {1}
    output = joined(frames, 1)
    # The terminal echoes input and turns "\n" into "\r\n": these bytes came through a pty.
    assert output.startswith(b"go\r\n")
    assert b"40 120\r\nerr\r\nis-a-tty\r\ngot go\r\n" in output
    assert {record["stream"] for record in supervisor.log_records(cid)} == {"stdout"}


def test_resizing_a_container_without_terminal_is_refused(supervisor):
    async def scenario():
        cid = await supervisor.create(["sleep", "1000"])
        await supervisor.start(cid)
        try:
            with pytest.raises(Conflict, match="no terminal"):
                await supervisor.client.resize(cid, 40, 120)
        finally:
            await supervisor.client.signal(cid, "KILL")

    run(scenario())


def test_the_log_is_docker_json_file_split_at_newlines_and_16k(supervisor):
    script = "printf '%040000d\\n' 0; echo two >&2; echo three; printf 'no newline'"

    async def scenario():
        cid = await supervisor.create(["sh", "-c", script])
        reader, _ = await supervisor.client.attach(cid)
        await supervisor.start(cid)
        await read_frames(reader)
        return cid

    cid = run(scenario())
    lines = (supervisor.tmp_path / f"{cid}-json.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(set(record) == {"log", "stream", "time"} for record in records)
    assert all(RFC3339_NANO.fullmatch(record["time"]) for record in records)
    stdout = [record["log"] for record in records if record["stream"] == "stdout"]
    assert stdout == ["0" * 16384, "0" * 16384, "0" * 7232 + "\n", "three\n", "no newline"]
    assert [record["log"] for record in records if record["stream"] == "stderr"] == ["two\n"]
    # Docker's exact shape, so that the daemon (or docker itself) can read it.
    assert any(line.startswith('{"log":"no newline","stream":"stdout","time":"') for line in lines)


def test_a_client_that_stops_reading_is_dropped_and_the_log_still_gets_everything(supervisor):
    total = 20_000_000
    line = "y" * 999

    async def start_writer():
        cid = await supervisor.create(["sh", "-c", f"yes {line} | head -c {total}"])
        return cid

    cid = run(start_writer())
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.connect(supervisor.socket)
    try:
        slow.sendall(encode_message({"op": "attach", "id": cid, "stdout": True, "stderr": True}))
        run(supervisor.start(cid))
        wait_until(lambda: supervisor.exit_record(cid) is not None, "the writer to finish")
        received = 0
        while chunk := slow.recv(1 << 20):
            received += len(chunk)
    finally:
        slow.close()
    assert received < total // 2
    logged = sum(len(record["log"]) for record in supervisor.log_records(cid))
    assert logged == total
    assert supervisor.exit_record(cid)["exit_code"] == 0


def test_stdin_the_process_does_not_read_yet_holds_back_the_client_and_then_all_arrives(supervisor):
    size = 5 << 20
    go = supervisor.flag_path("go")

    async def scenario():
        script = f"while [ ! -e {go} ]; do sleep 0.01; done; wc -c"
        cid = await supervisor.create(["sh", "-c", script], open_stdin=True, stdin_once=True)
        reader, writer = await supervisor.client.attach(cid, stdin=True)
        await supervisor.start(cid)
        writer.write(b"x" * size)
        writer.write_eof()
        # The supervisor holds about 1 MiB and then stops reading: the rest waits on our side.
        while writer.transport.get_write_buffer_size() == 0:
            await asyncio.sleep(0.01)
        supervisor.raise_flag("go")
        await writer.drain()
        return await read_frames(reader)

    frames = run(scenario())
    assert joined(frames, 1).strip() == str(size).encode()
