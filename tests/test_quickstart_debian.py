"""The README's quick start on a fresh Debian 12: a minimal bookworm is built with debootstrap (from
Debian's own mirror), the checkout copied in, and the README's first command run as typed inside
it (a chroot in a private mount namespace). It downloads a few hundred megabytes and takes minutes,
so it runs only when NSGEN_TEST_DEBIAN=1 (the image is kept in NSGEN_TEST_DEBIAN_ROOT, if given,
for the next run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

MIRROR = "http://deb.debian.org/debian"


def quick_start() -> str:
    """The README's first command, as written."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh install\n", 1)[1].split("```", 1)[0]
    return block.splitlines()[0].split("#", 1)[0].strip()


def test_the_quick_start_is_one_command_that_needs_no_system_pip():
    assert quick_start() == "sudo ./install.sh && nsgen render"


@pytest.mark.skipif(os.environ.get("NSGEN_TEST_DEBIAN") != "1", reason="builds a Debian 12 image: NSGEN_TEST_DEBIAN=1 runs it")
def test_the_quick_start_works_as_typed_on_a_fresh_debian_12(tmp_path):
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.fail("needs root and debootstrap (apt install debootstrap)")
    pristine = Path(os.environ.get("NSGEN_TEST_DEBIAN_ROOT") or tmp_path / "pristine")
    if not (pristine / "etc" / "debian_version").exists():
        subprocess.run(["debootstrap", "--variant=minbase", "--include=sudo,ca-certificates", "bookworm", str(pristine), MIRROR],
                       check=True, capture_output=True)
    image = tmp_path / "bookworm"  # a fresh copy each time: the pristine one is never changed
    subprocess.run(["cp", "-a", str(pristine), str(image)], check=True)
    checkout = image / "root" / "nsgen"
    shutil.rmtree(checkout, ignore_errors=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, archive):
        source, target = ROOT / name.decode(), checkout / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_file():
            shutil.copy2(source, target)
    # This network's name servers and certificate authorities (a proxy may sign what it passes on).
    for name in ("resolv.conf", "hosts", "hostname", "ssl/certs/ca-certificates.crt"):
        if Path("/etc", name).is_file():
            shutil.copyfile(Path("/etc", name), image / "etc" / name)
    script = f"""
set -e
mount -t proc proc {image}/proc
mount --rbind /dev {image}/dev
mount -t tmpfs tmpfs {image}/run
exec chroot {image} /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root PIP_CERT=/etc/ssl/certs/ca-certificates.crt bash -c '
  set -e
  cd /root/nsgen
  if [ -e /usr/bin/pip3 ] || python3 -c "import venv, ensurepip" 2>/dev/null; then echo "not a stock Debian"; exit 1; fi
  {quick_start()} > /tmp/setup.sh
  grep -q "ip netns add container-1" /tmp/setup.sh
  sudo nsgen --version                       # sudo finds it: /usr/local/bin is on its secure_path
  nsgen render --lint > /dev/null
'
"""
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nsgen, version" in done.stdout
