"""The /events stream shows a container's life in Docker's order and shape."""

from __future__ import annotations

import json
import subprocess
import time


def test_run_rm_events_in_order(daemon, cli, busybox):
    since = str(time.time() - 1)
    cli("run", "--rm", "--name", "evented", "busybox", "true")
    until = str(time.time() + 1)
    result = cli(
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "container=evented",
        "--format",
        "{{json .}}",
    )
    events = [json.loads(line) for line in result.stdout.splitlines()]
    actions = [e["Action"] for e in events]
    assert actions[:2] == ["create", "attach"] or actions[0] == "create"
    for expected in ("create", "start", "die", "destroy"):
        assert expected in actions, actions
    assert actions.index("start") < actions.index("die") < actions.index("destroy")
    die = next(e for e in events if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
    assert die["Type"] == "container" and die["status"] == "die" and die["from"] == "busybox"


def test_live_events_reach_a_waiting_client(daemon, cli, busybox):
    watcher = subprocess.Popen(
        [*cli.argv, "events", "--filter", "event=start", "--format", "{{.Actor.Attributes.name}}"],
        stdout=subprocess.PIPE,
        text=True,
        env=cli.env,
    )
    try:
        time.sleep(0.5)
        cli("run", "--rm", "--name", "live-evented", "busybox", "true")
        line = watcher.stdout.readline()
        assert line.strip() == "live-evented"
    finally:
        watcher.kill()
        watcher.wait()
