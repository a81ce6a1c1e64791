"""State survives: a daemon restart (even after SIGKILL) reloads images and containers, and running
containers keep running under the supervisor."""

from __future__ import annotations

import json
import time


def test_state_survives_daemon_kill(cli, busybox, daemon):
    cli("create", "--name", "keeps", "busybox", "echo", "kept")
    cli("run", "-d", "--name", "lives", "busybox", "sh", "-c", "while :; do echo alive; sleep 0.2; done")
    cli("run", "-d", "--name", "ends", "busybox", "sh", "-c", "sleep 1; exit 9")
    try:
        daemon.restart(kill=True)
        time.sleep(1.5)  # "ends" exits while... (or after) the daemon is down
        names = cli("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
        assert "keeps created" in names
        assert "lives running" in names
        ends = json.loads(cli("inspect", "ends").stdout)[0]["State"]
        assert ends["Status"] == "exited" and ends["ExitCode"] == 9
        before = cli("logs", "lives").stdout.count("alive")
        time.sleep(0.6)
        assert cli("logs", "lives").stdout.count("alive") > before  # still logged
        assert cli("start", "-a", "keeps").stdout == "kept\n"
        assert "busybox:latest" in cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    finally:
        cli("rm", "-f", "keeps", "lives", "ends")
