"""System commands: version, info, events."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Mapping
from typing import Any

import click

from pyengine import __version__
from pyengine.cli.app import client_of
from pyengine.cli.client import API_VERSION, APIError
from pyengine.cli.gotemplate_funcs import TemplateError
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def bytes_size(size: float) -> str:
    """Docker's BytesSize: binary units, 4 significant digits ("15.63GiB")."""
    unit = 0
    while size >= 1024.0 and unit < len(_BINARY_UNITS) - 1:
        size /= 1024.0
        unit += 1
    return f"{size:.4g}{_BINARY_UNITS[unit]}"


def _template_output(format_text: str, data: Any) -> str:
    from pyengine.cli.formatting import parse_template

    try:
        if format_text == "json":
            format_text = "{{json .}}"
        return parse_template(format_text).render(data) + "\n"
    except TemplateError as exc:
        raise CommandError(str(exc), 1) from exc


def client_version() -> dict[str, Any]:
    machine = platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "Platform": {"Name": "pyengine"},
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform,
        "Arch": arch,
        "Context": "default",
    }


def version_text(client: Mapping[str, Any], server: Mapping[str, Any] | None) -> str:
    """``docker version``'s layout: a Client section, then the Server and its components."""
    lines = [
        "Client:",
        f" Version:           {client['Version']}",
        f" API version:       {client['ApiVersion']}",
        f" Python version:    {client['PythonVersion']}",
        f" OS/Arch:           {client['Os']}/{client['Arch']}",
        f" Context:           {client['Context']}",
    ]
    if server is None:
        return "\n".join(lines) + "\n"
    lines += ["", f"Server: {(server.get('Platform') or {}).get('Name') or ''}".rstrip()]
    components = server.get("Components") or [
        {"Name": "Engine", "Version": server.get("Version"), "Details": server}
    ]
    for component in components:
        details = component.get("Details") or {}
        lines.append(f" {component.get('Name')}:")
        lines.append(f"  Version:          {component.get('Version')}")
        if component.get("Name") == "Engine":
            api = details.get("ApiVersion") or server.get("ApiVersion")
            minimum = details.get("MinAPIVersion") or server.get("MinAPIVersion")
            lines.append(f"  API version:      {api} (minimum version {minimum})")
            for label, key in (
                ("Go version", "GoVersion"),
                ("Python version", "PythonVersion"),
                ("Git commit", "GitCommit"),
                ("Built", "BuildTime"),
            ):
                if details.get(key):
                    lines.append(f"  {label + ':':<18}{details[key]}")
            lines.append(
                f"  OS/Arch:          {details.get('Os', server.get('Os'))}/"
                f"{details.get('Arch', server.get('Arch'))}"
            )
            lines.append(f"  Experimental:     {details.get('Experimental', 'false')}")
        else:
            for key, value in details.items():
                lines.append(f"  {key + ':':<18}{value}")
    return "\n".join(lines) + "\n"


@click.command(context_settings=_SETTINGS)
@click.option("-f", "--format", "format_text", default="", help="Format output using a custom template")
@click.pass_context
def version(ctx: click.Context, format_text: str) -> int:
    """Show the pyengine version information."""
    from pyengine.cli.client import DaemonUnreachable

    client_info = client_version()
    server = None
    failure: Exception | None = None
    try:
        server = client_of(ctx).get("/version")
    except (DaemonUnreachable, APIError) as exc:
        failure = exc
    if format_text:
        sys.stdout.write(_template_output(format_text, {"Client": client_info, "Server": server}))
    else:
        sys.stdout.write(version_text(client_info, server))
    if failure is not None:
        raise failure
    return 0


def info_text(info: Mapping[str, Any]) -> str:
    """``docker info``'s Server section, plus the drivers and hooks pyengine reports."""
    out = [
        "Client:",
        f" Version:    {__version__}",
        " Context:    default",
        "",
        "Server:",
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
    ]
    for pair in info.get("DriverStatus") or []:
        if len(pair) == 2:
            out.append(f"  {pair[0]}: {pair[1]}")
    out += [
        f" Logging Driver: {info.get('LoggingDriver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
        " Plugins:",
    ]
    plugins = info.get("Plugins") or {}
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if plugins.get(kind):
            out.append(f"  {kind}: {' '.join(plugins[kind])}")
    drivers = info.get("PyengineDrivers")
    if drivers:
        out.append(" Pyengine Drivers:")
        for kind in sorted(drivers):
            entries = drivers[kind] or []
            names = [
                f"{e.get('Name')} ({e.get('Status')})" if e.get("Status") else str(e.get("Name"))
                for e in entries
            ]
            out.append(f"  {kind}: {', '.join(names) if names else '(none)'}")
    hooks = info.get("PyengineHooks")
    if hooks is not None:
        out.append(" Hooks:" if hooks else " Hooks: (none)")
        out.extend(f"  {hook}" for hook in hooks)
    swarm = (info.get("Swarm") or {}).get("LocalNodeState") or "inactive"
    out.append(f" Swarm: {swarm}")
    runtimes = info.get("Runtimes") or {}
    if runtimes:
        out.append(f" Runtimes: {' '.join(sorted(runtimes))}")
    if info.get("DefaultRuntime"):
        out.append(f" Default Runtime: {info['DefaultRuntime']}")
    if info.get("SecurityOptions"):
        out.append(" Security Options:")
        for option in info["SecurityOptions"]:
            out.append(f"  {option.removeprefix('name=')}")
    out += [
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', 0)}",
        f" Total Memory: {bytes_size(float(info.get('MemTotal') or 0))}",
        f" Name: {info.get('Name', '')}",
        f" ID: {info.get('ID', '')}",
        f" Docker Root Dir: {info.get('DockerRootDir', '')}",
        f" Debug Mode: {str(bool(info.get('Debug'))).lower()}",
        f" Experimental: {str(bool(info.get('ExperimentalBuild'))).lower()}",
    ]
    insecure = (info.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs") or []
    if insecure:
        out.append(" Insecure Registries:")
        out.extend(f"  {cidr}" for cidr in insecure)
    out.append(f" Live Restore Enabled: {str(bool(info.get('LiveRestoreEnabled'))).lower()}")
    out.append("")
    for warning in info.get("Warnings") or []:
        out.append(warning)
    return "\n".join(out) + "\n"


@click.command(context_settings=_SETTINGS)
@click.option("-f", "--format", "format_text", default="", help="Format output using a custom template")
@click.pass_context
def info(ctx: click.Context, format_text: str) -> int:
    """Display system-wide information."""
    data = client_of(ctx).get("/info")
    sys.stdout.write(_template_output(format_text, data) if format_text else info_text(data))
    return 0


def event_line(event: Mapping[str, Any]) -> str:
    """docker events' line: time, type, action, actor ID and its attributes sorted."""
    nanos = event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000
    seconds, fraction = divmod(int(nanos), 1_000_000_000)
    moment = time.localtime(seconds)
    offset = time.strftime("%z", moment)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{fraction:09d}{zone}"
    actor = event.get("Actor") or {}
    kind = event.get("Type") or "container"
    action = event.get("Action") or event.get("status") or ""
    actor_id = actor.get("ID") or event.get("id") or ""
    attributes = actor.get("Attributes") or {}
    line = f"{stamp} {kind} {action} {actor_id}"
    if attributes:
        line += " (" + ", ".join(f"{key}={attributes[key]}" for key in sorted(attributes)) + ")"
    return line


@click.command(context_settings=_SETTINGS)
@click.option("--since", help="Show all events created since timestamp")
@click.option("--until", help="Stream events until this timestamp")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "format_text", default="", help="Format output using a custom template")
@click.pass_context
def events(
    ctx: click.Context, since: str | None, until: str | None, filters: tuple[str, ...], format_text: str
) -> int:
    """Get real time events from the server."""
    from pyengine.cli.containers import parse_timestamp
    from pyengine.cli.listing import parse_filters

    query: dict[str, Any] = {
        "since": parse_timestamp(since) if since else None,
        "until": parse_timestamp(until) if until else None,
        "filters": parse_filters(filters),
    }
    template = None
    if format_text:
        from pyengine.cli.formatting import parse_template

        try:
            template = parse_template("{{json .}}" if format_text == "json" else format_text)
        except TemplateError as exc:
            raise CommandError(str(exc), 1) from exc
    response = client_of(ctx).open_stream("GET", "/events", query)
    try:
        for event in response.iter_json():
            if template is not None:
                sys.stdout.write(template.render(event) + "\n")
            else:
                sys.stdout.write(event_line(event) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        response.conn.close()
    return 0
