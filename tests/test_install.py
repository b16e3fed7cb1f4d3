"""Packaging: a wheel installed into a fresh venv, outside the checkout, renders (templates ship inside)."""

from __future__ import annotations

import os
import subprocess
import sys

from nsgen import __version__
from tests.helpers import ROOT


def test_wheel_in_fresh_venv_renders(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-warn-script-location"]
    wheel_dir = tmp_path / "wheel"
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheel_dir), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = wheel_dir.glob("nsgen-*.whl")
    subprocess.run([*pip, "--force-reinstall", "--no-deps", str(wheel)], check=True, cwd=tmp_path)
    run = tmp_path / "elsewhere"
    run.mkdir()
    nsgen = str(venv / "bin" / "nsgen")
    setup = subprocess.run([nsgen, "render"], capture_output=True, text=True, cwd=run, check=True)
    assert "ip link add vethc1 group 0x6e6bffe9 type veth peer name veth1 netns container-1" in setup.stdout
    teardown = subprocess.run([nsgen, "render", "--teardown"], capture_output=True, text=True, cwd=run, check=True)
    assert "ip netns delete container-1" in teardown.stdout
    module = subprocess.run([str(venv / "bin" / "python"), "-c", "import nsgen.render as r; print(r.templates_dir())"], capture_output=True, text=True, cwd=run, check=True)
    assert str(venv) in module.stdout  # the templates came from the wheel, not from the checkout
    # the sandbox's world servers, the examples and the unit template ship too
    shipped = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import os, nsgen.sandbox.host as h, nsgen.resources as r, nsgen.render as t; "
         "print(h.WORLD_DIR); print(sorted(os.listdir(h.WORLD_DIR))); print(sorted(p.name for p in r.shipped('examples').glob('*.yaml'))); "
         "print((t.templates_dir() / 'nsgen.service.j2').is_file())"],
        capture_output=True, text=True, cwd=run, check=True,
    ).stdout.splitlines()
    assert shipped[0].startswith(str(venv))
    assert "dns_server.py" in shipped[1] and "http_server.py" in shipped[1]
    assert shipped[2] == ("['bridge.yaml', 'dual-stack.yaml', 'ipv6-only.yaml', 'jumbo.yaml', 'macvlan.yaml', 'names.yaml', 'overlay.yaml', "
                          "'pod.yaml', 'ports.yaml', 'tutorial.yaml']") and shipped[3] == "True"
    init = subprocess.run([nsgen, "init", "--example", "bridge", "-o", "-"], capture_output=True, text=True, cwd=run, check=True)
    assert "name: bridge-lab" in init.stdout


def test_install_script_puts_nsgen_on_the_path_of_root_and_sudo(tmp_path):
    """install.sh: a virtual environment of nsgen's own and a link in a folder on sudo's PATH
    (here both in a temporary folder, and no Debian package installed)."""
    prefix, bin_dir = tmp_path / "opt" / "nsgen", tmp_path / "bin"
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NSGEN_PREFIX": str(prefix),
           "NSGEN_BIN": str(bin_dir), "NSGEN_NO_APT": "1", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "install.sh")], env=env, capture_output=True, text=True)
    if os.geteuid() != 0:
        assert done.returncode == 1 and "run it as root (sudo " in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert (bin_dir / "nsgen").resolve() == (prefix / "bin" / "nsgen").resolve()
    assert f"install: installed nsgen, version {__version__}: {bin_dir}/nsgen (for sudo too)" in done.stderr
    rendered = subprocess.run([str(bin_dir / "nsgen"), "render"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert rendered.returncode == 0 and "ip netns add container-1" in rendered.stdout
    again = subprocess.run(["bash", str(ROOT / "install.sh")], env=env, capture_output=True, text=True)  # again: an upgrade
    assert again.returncode == 0, again.stderr
    gone = subprocess.run(["bash", str(ROOT / "install.sh"), "--uninstall"], env=env, capture_output=True, text=True)
    assert gone.returncode == 0 and not prefix.exists() and not (bin_dir / "nsgen").exists()
