"""Documentation that cannot go stale: docs/cli.md is the commands' own --help, every command is in
the README's table, the docs' links resolve, and shell completion works as documented."""

from __future__ import annotations

import re
import subprocess
import sys

from click.testing import CliRunner

from nsgen.cli import main
from nsgen.docs import cli_reference
from tests.helpers import EXAMPLES, ROOT

DOCS = ROOT / "docs"


def test_cli_reference_is_current():
    current = (DOCS / "cli.md").read_text()
    assert current == cli_reference(), "docs/cli.md is stale: regenerate it with `python3 -m nsgen.docs > docs/cli.md`"


def test_cli_reference_holds_every_command_and_its_example():
    text = cli_reference()
    for name in main.commands:
        section = text.split(f"## nsgen {name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"Usage: nsgen {name}" in section and "Example:" in section, name


def test_docs_check_mode(tmp_path):
    stale = tmp_path / "cli.md"
    stale.write_text("old\n")
    done = subprocess.run([sys.executable, "-m", "nsgen.docs", "--check", str(stale)], capture_output=True, text=True)
    assert done.returncode == 1 and "is stale" in done.stderr
    done = subprocess.run([sys.executable, "-m", "nsgen.docs", "--check", str(DOCS / "cli.md")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_readme_table_names_every_command():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## CLI reference", 1)[1].split("\n\n", 2)[1]
    for name in main.commands:
        assert f"| `nsgen {name}" in table, name


def test_relative_links_in_the_docs_resolve():
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_tutorial_walkthrough_uses_the_tutorial_example():
    tutorial = (DOCS / "tutorial.md").read_text()
    example = (EXAMPLES / "tutorial.yaml").read_text()
    for line in ("subnet: 172.18.0.0/24", "host_interface: vethc1", "- nsgen echo-server --port 8000"):
        assert line in example and line in tutorial


def completion(words: str, cword: int) -> list[str]:
    result = CliRunner().invoke(main, [], prog_name="nsgen",
                                env={"_NSGEN_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    return [line.split(",", 1)[1] for line in result.output.splitlines() if line]


def test_shell_completion_as_documented():
    script = CliRunner().invoke(main, [], prog_name="nsgen", env={"_NSGEN_COMPLETE": "bash_source"}).output
    assert "_nsgen_completion()" in script and "complete -o nosort -F _nsgen_completion nsgen" in script
    assert completion("nsgen di", 1) == ["diagram"]
    assert completion("nsgen init --example ", 3) == ["bridge", "dual-stack", "ipv6-only", "jumbo", "macvlan", "names", "overlay", "pod", "ports",
                                                      "tutorial"]
    assert completion("nsgen diagram --format ", 3) == ["text", "mermaid", "dot", "svg"]
    assert completion(f"nsgen exec -f {EXAMPLES / 'bridge.yaml'} ", 4) == ["web", "app", "db"]
    assert completion("nsgen exec -f /nonexistent.yaml ", 4) == []
