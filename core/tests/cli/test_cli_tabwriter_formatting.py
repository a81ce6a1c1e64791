"""Tables as the docker CLI prints them: Go's tabwriter, human sizes and durations, row contexts."""

from __future__ import annotations

import json

import pytest
from pyengine.cli import formatting
from pyengine.cli.gotemplate_funcs import TemplateError
from pyengine.cli.tabwriter import align


def test_go_tabwriter_documentation_example() -> None:
    # Go's Example_elastic, left-aligned: a column block ends at a line without a cell in it.
    text = "a\tb\tc\naa\tbb\tcc\naaa\t\naaaa\tdddd\teeee\n"
    assert align(text, minwidth=0, tabwidth=0, padding=1, padchar=".") == (
        "a....b..c\naa...bb.cc\naaa..\naaaa.dddd.eeee\n"
    )


def test_docker_settings_pad_to_ten_and_three() -> None:
    text = "CONTAINER ID\tIMAGE\tNAMES\nfebc9683d611\tbusybox\tt2\n"
    assert align(text) == ("CONTAINER ID   IMAGE     NAMES\nfebc9683d611   busybox   t2\n")


def test_line_without_tabs_ends_every_column_block() -> None:
    text = "a\tb\nheader only\nlonger cell\tc\n"
    assert align(text, minwidth=0, padding=1) == "a b\nheader only\nlonger cell c\n"


def test_text_without_final_newline_keeps_it_that_way() -> None:
    assert align("x\ty") == "x         y"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (1982256, "1.98MB"),
        (4260000, "4.26MB"),
        (123456789, "123MB"),
        (1e12, "1TB"),
        (15_500_000_000, "15.5GB"),
    ],
)
def test_human_size_is_decimal_with_three_digits(size: float, expected: str) -> None:
    assert formatting.human_size(size) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (5400, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (14 * 86400, "2 weeks"),
        (60 * 86400, "2 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration_matches_docker(seconds: float, expected: str) -> None:
    assert formatting.human_duration(seconds) == expected


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ([], ""),
        ([{"PrivatePort": 80, "Type": "tcp"}], "80/tcp"),
        (
            [
                {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            ],
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp",
        ),
        (
            [
                {"PrivatePort": 81, "Type": "tcp"},
                {"PrivatePort": 80, "Type": "tcp"},
                {"PrivatePort": 82, "Type": "tcp"},
                {"PrivatePort": 53, "Type": "udp"},
            ],
            "53/udp, 80-82/tcp",
        ),
        (
            [
                {"IP": "0.0.0.0", "PrivatePort": 9000, "PublicPort": 9000, "Type": "tcp"},
                {"IP": "0.0.0.0", "PrivatePort": 9001, "PublicPort": 9001, "Type": "tcp"},
            ],
            "0.0.0.0:9000-9001->9000-9001/tcp",
        ),
    ],
)
def test_ports_column(ports: list[dict], expected: str) -> None:
    assert formatting.displayable_ports(ports) == expected


NOW = 1_795_370_000.0
CONTAINER = {
    "Id": "febc9683d6117c1e1c3e4d6c2b5d3c8d1b0e3f0c6f0a5b4c3d2e1f0a9b8c7d6e",
    "Names": ["/t2"],
    "Image": "busybox",
    "ImageID": "sha256:1c07c4615e16d80c1d111e9f41872dfc8979046c5f69502493d3b8ab6d82f277",
    "Command": "sleep 100",
    "Created": NOW - 0.4,
    "Ports": [],
    "Labels": {"a": "b", "com.example": "x"},
    "State": "running",
    "Status": "Up Less than a second",
    "NetworkSettings": {"Networks": {"bridge": {}}},
    "Mounts": [{"Name": "0123456789abcdef0123", "Driver": "local"}],
}


def test_ps_default_table_is_dockers() -> None:
    rows = [formatting.container_row(CONTAINER, truncate=True, now=NOW)]
    text = formatting.render_rows("", rows, formatting.CONTAINER_HEADERS, formatting.CONTAINER_TABLE)
    assert text == (
        "CONTAINER ID   IMAGE     COMMAND       CREATED                  "
        "STATUS                  PORTS     NAMES\n"
        'febc9683d611   busybox   "sleep 100"   Less than a second ago   '
        "Up Less than a second             t2\n"
    )


def test_ps_row_fields() -> None:
    row = formatting.container_row(CONTAINER, truncate=True, now=NOW)
    assert row["Labels"] == "a=b,com.example=x"
    assert row["Mounts"] == "0123456789abcd…"
    assert row["LocalVolumes"] == "1"
    assert row["Networks"] == "bridge"
    assert row.Label("a") == "b"
    untruncated = formatting.container_row(dict(CONTAINER, Command="x" * 30), truncate=False, now=NOW)
    assert untruncated["ID"] == CONTAINER["Id"]
    assert untruncated["Command"] == '"' + "x" * 30 + '"'
    assert formatting.container_row(dict(CONTAINER, Command="x" * 30), True, NOW)["Command"] == (
        '"' + "x" * 19 + '…"'
    )


def test_ps_image_shown_as_short_id_when_created_from_an_id() -> None:
    row = formatting.container_row(dict(CONTAINER, Image=CONTAINER["ImageID"]), truncate=True, now=NOW)
    assert row["Image"] == "1c07c4615e16"


def test_json_format_prints_sorted_keys_with_go_escaping() -> None:
    image = {
        "Id": "sha256:" + "ab" * 32,
        "RepoTags": ["busybox:latest"],
        "Created": NOW - 600,
        "Size": 1982256,
        "SharedSize": -1,
        "Containers": -1,
    }
    rows = formatting.image_rows(image, truncate=True, now=NOW)
    line = formatting.render_rows("json", rows, formatting.IMAGE_HEADERS, formatting.IMAGE_TABLE)
    assert line.startswith('{"Containers":"N/A","CreatedAt":')
    assert '"Digest":"\\u003cnone\\u003e"' in line
    decoded = json.loads(line)
    assert decoded["CreatedSince"] == "10 minutes ago"
    assert decoded["Size"] == "1.98MB"
    assert decoded["VirtualSize"] == "1.982MB"


def test_image_rows_one_per_tag_and_none_for_untagged() -> None:
    image = {"Id": "sha256:" + "cd" * 32, "RepoTags": ["a:1", "localhost:5000/b:2", "c"], "Created": NOW}
    rows = formatting.image_rows(image, truncate=True, now=NOW)
    assert [(r["Repository"], r["Tag"]) for r in rows] == [
        ("a", "1"),
        ("localhost:5000/b", "2"),
        ("c", "<none>"),
    ]
    untagged = formatting.image_rows({"Id": "sha256:" + "ef" * 32, "RepoTags": None}, truncate=False)
    assert [(r["Repository"], r["Tag"], r["ID"]) for r in untagged] == [
        ("<none>", "<none>", "sha256:" + "ef" * 32)
    ]


def test_custom_table_format_builds_headers_from_field_names() -> None:
    rows = [formatting.container_row(CONTAINER, truncate=True, now=NOW)]
    text = formatting.render_rows(
        'table {{.Names}}\\t{{.Label "a"}}\\t{{.State | upper}}',
        rows,
        formatting.CONTAINER_HEADERS,
        formatting.CONTAINER_TABLE,
    )
    assert text == "NAMES     LABEL     STATE\nt2        b         RUNNING\n"


def test_plain_format_is_one_line_per_row_without_alignment() -> None:
    rows = [formatting.container_row(CONTAINER, truncate=True, now=NOW)] * 2
    text = formatting.render_rows("{{.Names}}\t{{.State}}", rows, formatting.CONTAINER_HEADERS, "")
    assert text == "t2\trunning\nt2\trunning\n"


def test_unknown_field_is_an_error_naming_dockers_type() -> None:
    rows = [formatting.container_row(CONTAINER, truncate=True, now=NOW)]
    with pytest.raises(
        TemplateError,
        match=r"^failed to execute template: .*can't evaluate field Nope in "
        r"type \*formatter.ContainerContext",
    ):
        formatting.render_rows("{{.Nope}}", rows, formatting.CONTAINER_HEADERS, "")
    with pytest.raises(TemplateError, match="^failed to parse template: template: :1: unclosed action"):
        formatting.render_rows("{{.ID", rows, formatting.CONTAINER_HEADERS, "")


def test_history_rows() -> None:
    layer = {
        "Id": "<missing>",
        "Created": NOW - 7200,
        "CreatedBy": "/bin/sh -c\t#(nop) " + "y" * 60,
        "Size": 0,
        "Comment": "",
    }
    row = formatting.history_row(layer, truncate=True, now=NOW)
    assert row["ID"] == "<missing>"
    assert row["CreatedSince"] == "2 hours ago"
    assert row["CreatedBy"] == "/bin/sh -c #(nop) " + "y" * 26 + "…"
    assert row["Size"] == "0B"
