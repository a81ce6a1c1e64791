"""Go text/template semantics for --format, checked against what Go itself prints."""

from __future__ import annotations

import pytest
from pyengine.cli.gotemplate import Template, TemplateSyntaxError, render
from pyengine.cli.gotemplate_funcs import TemplateError, sprintf

CONTAINER = {
    "Id": "8fa4f99d125bd832d94b30bed7ddf6c86cd08c5890e93833e0c4a793048ba20f",
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 4242, "ExitCode": 0, "Health": None},
    "Config": {
        "Env": ["PATH=/bin", "A=1"],
        "Cmd": ["sh", "-c", "echo hi"],
        "Entrypoint": None,
        "Labels": {"com.example.team": "infra", "app": "web"},
        "Tty": False,
    },
    "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}},
    "Mounts": [],
    "Size": 1.5,
    "Count": 3,
}

CASES = [
    # fields and dot
    ("{{.Name}}", "/web"),
    ("{{.State.Status}}", "running"),
    ("{{.State.Pid}}", "4242"),
    ("{{.State.Running}}", "true"),
    ("{{.Config.Cmd}}", "[sh -c echo hi]"),
    ("{{.Config.Labels}}", "map[app:web com.example.team:infra]"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.Nope}}", "<no value>"),
    ("{{.Nope.Deeper}}", "<no value>"),
    ("{{.Mounts}}", "[]"),
    ("{{.Size}}", "1.5"),
    ("literal text only", "literal text only"),
    ("{{$.Name}}", "/web"),
    # json
    ("{{json .Config.Cmd}}", '["sh","-c","echo hi"]'),
    ("{{json .State.Health}}", "null"),
    ("{{json .Config.Labels}}", '{"com.example.team":"infra","app":"web"}'),
    ('{{json "<&>"}}', '"<&>"'),
    # pipelines: the piped value is the LAST argument
    ("{{.Name | upper}}", "/WEB"),
    ('{{.Name | printf "%s!"}}', "/web!"),
    ('{{"a,b" | split "," | len}}', "1"),
    ('{{split "a,b" "," | len}}', "2"),
    ('{{join .Config.Env ";"}}', "PATH=/bin;A=1"),
    ("{{.Name | lower | upper}}", "/WEB"),
    # range rebinds dot; variables
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[PATH=/bin][A=1]"),
    ("{{range $i, $e := .Config.Env}}{{$i}}={{$e}} {{end}}", "0=PATH=/bin 1=A=1 "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}},{{end}}", "app:web,com.example.team:infra,"),
    ("{{range .Config.Labels}}{{.}} {{end}}", "web infra "),
    ("{{range .Mounts}}x{{else}}none{{end}}", "none"),
    ("{{range $e := .Config.Cmd}}<{{$e}}>{{end}}", "<sh><-c><echo hi>"),
    ('{{range .Config.Cmd}}{{if eq . "-c"}}{{continue}}{{end}}{{.}};{{end}}', "sh;echo hi;"),
    ('{{range .Config.Cmd}}{{if eq . "-c"}}{{break}}{{end}}{{.}};{{end}}', "sh;"),
    ("{{range .Config.Env}}{{$.Name}}{{end}}", "/web/web"),
    ("{{$n := .Name}}{{range .Config.Cmd}}{{$n}}{{end}}", "/web/web/web"),
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    # if / else / with
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .Config.Tty}}tty{{else}}notty{{end}}", "notty"),
    ("{{if .Nope}}a{{else if .State.Running}}b{{else}}c{{end}}", "b"),
    ("{{if not .Config.Tty}}x{{end}}", "x"),
    ("{{if and .State.Running .Config.Tty}}both{{else}}no{{end}}", "no"),
    ("{{if or .Config.Tty .State.Running}}either{{end}}", "either"),
    ("{{if and .Mounts (index .Mounts 0)}}x{{else}}short-circuit{{end}}", "short-circuit"),
    ("{{or .Mounts .Name}}", "/web"),
    ("{{and .Name .State.Pid}}", "4242"),
    ('{{.State.Running | and "x"}}', "true"),
    ("{{with .State}}{{.Status}}/{{.Pid}}{{end}}", "running/4242"),
    ("{{with .Nope}}x{{else}}empty{{end}}", "empty"),
    ("{{with $s := .State}}{{$s.Status}}{{end}}", "running"),
    ('{{if eq .State.Status "exited" "running"}}match{{end}}', "match"),
    ("{{if ne .State.Pid 0}}nz{{end}}", "nz"),
    ("{{if gt .Count 2}}big{{end}}{{if lt .Count 2}}small{{end}}", "big"),
    ("{{if le .Count 3}}le{{end}}{{if ge .Count 4}}ge{{end}}", "le"),
    # index, len, slice
    ('{{index .Config.Labels "com.example.team"}}', "infra"),
    ('{{index .Config.Labels "missing"}}', "<no value>"),
    ("{{index .Config.Cmd 2}}", "echo hi"),
    ('{{(index .NetworkSettings.Ports "80/tcp")}}', "[map[HostIp:0.0.0.0 HostPort:8080]]"),
    ('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}', "8080"),
    ("{{len .Config.Env}}", "2"),
    ("{{len .Name}}", "4"),
    ("{{slice .Id 0 12}}", "8fa4f99d125b"),
    # printf, print, println
    ('{{printf "%s-%d" .Name .State.Pid}}', "/web-4242"),
    ('{{printf "%-6s|" "ab"}}', "ab    |"),
    ('{{printf "%5d|" 42}}', "   42|"),
    ('{{printf "%q" .Name}}', '"/web"'),
    ('{{printf "%v" .Config.Cmd}}', "[sh -c echo hi]"),
    ('{{printf "%.2f" .Size}}', "1.50"),
    ('{{printf "%x" 255}}', "ff"),
    ('{{printf "%t" true}}', "true"),
    ('{{printf "100%%"}}', "100%"),
    ('{{printf "%d"}}', "%!d(MISSING)"),
    ("{{print .Name .State.Pid}}", "/web4242"),
    ("{{print 1 2}}", "1 2"),
    ("{{println .Name}}", "/web\n"),
    # Docker's functions
    ('{{title "hello world"}}', "Hello World"),
    ("{{upper .Name}}", "/WEB"),
    ('{{lower "ABC"}}', "abc"),
    ("{{pad .Name 2 1}}|", "  /web |"),
    ('{{pad "" 2 1}}|', "|"),
    ("{{truncate .Id 12}}", "8fa4f99d125b"),
    ('{{truncate "ab" 5}}', "ab"),
    ('{{split "a:b:c" ":"}}', "[a b c]"),
    # whitespace trimming and comments
    ("a  {{- .Name -}}  b", "a/webb"),
    ("x\n{{- /* gone */ -}}\ny", "xy"),
    ("{{/* a comment */}}z", "z"),
    ("{{range .Config.Cmd -}}\n  {{.}}\n{{- end}}", "sh-cecho hi"),
    ("{{- .Name}}", "/web"),
    ("{{-3}}", "-3"),
    # literals
    ('{{"quoted \\"x\\"\\n"}}', 'quoted "x"\n'),
    ("{{`raw \\n`}}", "raw \\n"),
    ("{{1.5}} {{true}} {{0x10}}", "1.5 true 16"),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_renders_like_go(template: str, expected: str) -> None:
    assert render(template, CONTAINER) == expected


PARSE_ERRORS = [
    ("{{.Name", "unclosed action"),
    ("{{nofunc .Name}}", 'function "nofunc" not defined'),
    ("{{if .Name}}x", "missing {{end}}"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{range .X}}{{else}}{{else}}{{end}}", "expected {{end}}"),
    ("{{break}}", "outside {{range}}"),
    ('{{"unterminated}}', "unterminated quoted string"),
    ("{{.Name | }}", "missing value for command"),
    ("{{(.Name}}", "unclosed left paren"),
]


@pytest.mark.parametrize(("template", "message"), PARSE_ERRORS)
def test_parse_errors_say_what_is_wrong(template: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match="^template: :1: ") as caught:
        Template(template)
    assert message in str(caught.value)


EXEC_ERRORS = [
    ("{{.Name.Foo}}", "can't evaluate field Foo in type string"),
    ("{{index .Config.Cmd 9}}", "index out of range"),
    ("{{len .Nope}}", "len of nil pointer"),
    ("{{$undefined}}", "undefined variable"),
    ('{{"x" 1}}', "can't give argument to non-function"),
    ("{{range .Name}}{{end}}", "range can't iterate over /web"),
    ('{{lt 1 "a"}}', "incompatible types for comparison"),
    # the piped value is the last argument, so this is join(";", list): a type error as in Go
    ('{{.Config.Env | join ";"}}', "wrong type for value; expected []string; got string"),
]


@pytest.mark.parametrize(("template", "message"), EXEC_ERRORS)
def test_execution_errors_name_the_action(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTAINER)
    text = str(caught.value)
    assert text.startswith('template: :1: executing "" at <')
    assert message in text


def test_missing_key_error_mode_is_docker_inspects() -> None:
    template = Template("{{.Config.Nope}}", missing_key_error=True)
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        template.render(CONTAINER)


def test_parse_error_reports_the_line_of_the_action() -> None:
    with pytest.raises(TemplateSyntaxError, match="^template: :3: "):
        Template("a\nb\n{{nofunc}}")


def test_methods_of_the_data_take_arguments() -> None:
    class Row(dict):
        def Label(self, name: str) -> str:  # noqa: N802
            return {"app": "web"}.get(name, "")

    row = Row(ID="abc")
    assert render('{{.ID}} {{.Label "app"}}|{{.Label "x"}}', row) == "abc web|"
    assert render('{{"app" | .Label}}', row) == "web"


def test_template_renders_many_times_without_leaking_variables() -> None:
    template = Template("{{range $i, $e := .}}{{$i}}{{end}}")
    assert template.render(["a", "b"]) == "01"
    assert template.render(["c"]) == "0"


@pytest.mark.parametrize(
    ("format_text", "args", "expected"),
    [
        ("%s and %s", ("a", "b"), "a and b"),
        ("%d", ("x",), "%!d(string=x)"),
        ("%s", ("a", "b"), "a%!(EXTRA string=b)"),
        ("%08.3f", (3.14159,), "0003.142"),
        ("%+d", (5,), "+5"),
        ("%X", ("hi",), "6869"),
        ("%v", (None,), "<nil>"),
        ("%v", ({"b": 1, "a": [1, 2]},), "map[a:[1 2] b:1]"),
        ("%g", (1e21,), "1e+21"),
        ("%g", (100000.0,), "100000"),
    ],
)
def test_printf_follows_go_verbs(format_text: str, args: tuple, expected: str) -> None:
    assert sprintf(format_text, *args) == expected
