"""The CLI parses options and calls the library; stdout carries only the product, diagnostics go to stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nsgen import __version__
from nsgen.errors import NsgenError

FILE_HELP = "Topology file (YAML or JSON). Default: ./nsgen.yaml if present, else the built-in tutorial network."


class UserError(click.ClickException):
    """A NsgenError shown as the user should see it: one `error:` line per problem, no traceback."""

    def show(self, file=None) -> None:
        file = file or sys.stderr
        for line in self.message.splitlines():
            click.echo(f"error: {line}" if not line.startswith("  ") else line, file=file)


def _source(file: str | None) -> tuple[Path, str]:
    from nsgen.resources import default_topology_path

    if file:
        return Path(file), file
    if Path("nsgen.yaml").is_file():
        return Path("nsgen.yaml"), "nsgen.yaml"
    return default_topology_path(), "the built-in tutorial topology"


def load_plan(file: str | None):
    """File -> data -> resolved topology -> plan, with every error turned into a UserError."""
    from nsgen.errors import ValidationError
    from nsgen.load import load_file
    from nsgen.models import resolve
    from nsgen.plan import compile_plan

    path, label = _source(file)
    try:
        topology = resolve(load_file(path))
    except ValidationError as exc:
        raise UserError("\n".join(f"{label}: {p + ': ' if p else ''}{m}" for p, m in exc.problems)) from None
    except NsgenError as exc:
        raise UserError(str(exc)) from None
    return compile_plan(topology)


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


def _write(text: str, output: str | None) -> None:
    if output and output != "-":
        path = Path(output)
        path.write_text(text)
        path.chmod(0o755)
    else:
        click.echo(text, nl=False)


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", help=FILE_HELP)
@click.option("--teardown", is_flag=True, help="Render the script that removes the topology instead.")
@click.option("-o", "--output", metavar="OUT", help="Write the script to OUT (made executable) instead of stdout.")
def render(file: str | None, teardown: bool, output: str | None) -> None:
    """Print the bash script that sets the topology up (or, with --teardown, removes it).

    \b
    Example:
      nsgen render -f examples/tutorial.yaml -o setup.sh && sudo bash setup.sh
    """
    from nsgen.render import render as render_plan

    plan = load_plan(file)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    _write(render_plan(plan, teardown=teardown), output)


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", help=FILE_HELP)
@click.option("--teardown", is_flag=True, help="Remove the topology instead of setting it up.")
@click.option("-v", "--verbose", is_flag=True, help="Also show each command as it runs.")
@click.option("-q", "--quiet", is_flag=True, help="Show nothing but errors.")
def run(file: str | None, teardown: bool, verbose: bool, quiet: bool) -> None:
    """Set the topology up on this host (or remove it), undoing everything if a step fails.

    \b
    Example:
      sudo nsgen run -f examples/tutorial.yaml
      sudo nsgen run -f examples/tutorial.yaml --teardown
    """
    import os
    import signal

    from nsgen import execute

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: nothing half-done
    if os.geteuid() != 0:  # before reading anything from the host
        raise UserError(execute.NOT_ROOT)
    plan = load_plan(file)
    progress = execute.Progress(lambda line: click.echo(line, err=True), 0 if quiet else 2 if verbose else 1)
    try:
        (execute.teardown if teardown else execute.setup)(plan, progress=progress)
    except NsgenError as exc:
        raise UserError(str(exc)) from None


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", help=FILE_HELP)
def validate(file: str | None) -> None:
    """Check the topology file and report every problem; change nothing.

    \b
    Example:
      nsgen validate -f examples/tutorial.yaml
    """
    plan = load_plan(file)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    t = plan.topology
    click.echo(f"topology {t.name} is valid: {len(t.networks)} network(s), {len(t.containers)} container(s), {len(plan.steps)} steps", err=True)


@main.command("echo-server")
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port to listen on.")
def echo_server(port: int) -> None:
    """Serve the tutorial's echo server: GET /echo returns the request headers as JSON.

    \b
    Example:
      ip netns exec container-1 nsgen echo-server -p 8000
    """
    from nsgen.echo_server import serve

    try:
        serve(port)
    except OSError as exc:
        raise UserError(f"cannot listen on port {port}: {exc.strerror}") from None


def _write_file(text: str, output: str | None) -> None:
    """The product to OUT (a plain file, not executable), or to stdout when OUT is missing or '-'."""
    if output and output != "-":
        try:
            Path(output).write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write {output}: {exc.strerror}") from None
    else:
        click.echo(text, nl=False)


@main.command()
@click.option("-f", "--file", "file", metavar="FILE", help=FILE_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot", "svg"]),
              help="text (the tree that heads the setup script), mermaid, dot (Graphviz) or svg (drawn by Graphviz's dot). "
              "Default: from OUT's suffix (.svg, .dot/.gv, .mmd), else text.")
@click.option("-o", "--output", metavar="OUT", help="Write the picture to OUT instead of stdout.")
def diagram(file: str | None, fmt: str | None, output: str | None) -> None:
    """Draw the topology: namespaces with their interfaces and addresses, bridges, veth links,
    the host's gateways, NAT and published ports.

    \b
    Example:
      nsgen diagram -f examples/bridge.yaml
      nsgen diagram -f examples/bridge.yaml --format mermaid >> README.md
      nsgen diagram -f examples/bridge.yaml -o bridge.svg   # needs Graphviz
    """
    from nsgen.diagram import draw, format_for

    implied = format_for(output)
    if fmt is None:
        fmt = implied or "text"
    elif output and output.lower().endswith(".svg") and fmt != "svg":
        raise UserError(f"{output} is an SVG file name, but --format is {fmt}; use --format svg (or another name)")
    plan = load_plan(file)
    try:
        picture = draw(plan.topology, fmt)
    except NsgenError as exc:
        raise UserError(str(exc)) from None
    _write_file(picture, output)


if __name__ == "__main__":  # pragma: no cover
    main()
