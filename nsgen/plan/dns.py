"""Each container's resolver and names: /etc/netns/<name>/resolv.conf and /etc/netns/<name>/hosts,
which `ip netns exec` shows as /etc/resolv.conf and /etc/hosts inside.

A container's hosts file names lo, the container itself (its addresses on each of its networks)
and every container it shares a network with, at its address on that network; the aliases given
for a container on a network are names of its addresses there, for the containers on that network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nsgen.names import NETNS_ETC, resolv_mark
from nsgen.plan.builder import Builder
from nsgen.plan.steps import C, Check, Step, write_file

if TYPE_CHECKING:
    from nsgen.models import Container, Topology

# As Debian's /etc/hosts names the loopback addresses
LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def dns(b: Builder) -> None:
    for c in b.t.containers.values():
        if not c.dns:
            continue
        folder = f"{NETNS_ETC}/{c.name}"
        head = resolv_mark(b.t.name)
        text = f"{head} nameservers from {c.dns_source}.\n" + "".join(f"nameserver {s}\n" for s in c.dns)
        conf = f"{folder}/resolv.conf"
        write, check = write_file(conf, text, parents=True)
        b.add(
            Step(
                id=f"dns:{c.name}",
                section="DNS",
                summary=f"Give {c.name} its own resolver: ip netns exec shows {conf} as /etc/resolv.conf inside.",
                commands=(write,),
                checks=(check,),
                undo=(
                    C("rm", "-f", conf, only_if=(("grep", "-qF", head, conf),)),
                    C("rmdir", "--ignore-fail-on-non-empty", folder, only_if=(("test", "-d", folder), b.netns_ours(c.name))),
                ),
                probe=(("test", "-e", conf),),
                resource=f"file {conf}",
                ours=(("grep", "-qF", head, conf),),
                group=f"container:{c.name}",
            )
        )


def host_entries(t: Topology) -> dict[tuple[str, str], str]:
    """(container, network) -> its lines of a hosts file there: each address with its names."""
    entries = {}
    for other in t.containers.values():
        for x in other.attachments:
            names = " ".join(dict.fromkeys((other.name, *x.aliases)))
            entries[(other.name, x.network)] = "".join(f"{address}\t{names}\n" for address, _n, _g in x.addresses)
    return entries


def hosts_text(t: Topology, c: Container, entries: dict[tuple[str, str], str] | None = None) -> str:
    """The hosts file of container c: lo, itself, then each container it shares a network with (on
    an overlay network, those on other hosts after those on this one). `entries`: host_entries(t),
    made once for every container's file."""
    entries = host_entries(t) if entries is None else entries
    lines = [f"{resolv_mark(t.name)} the names {c.name} sees.\n", LOCALHOST]
    mine = [a.network for a in c.attachments]
    for other in (c.name, *(o for o in t.containers if o != c.name)):
        lines += [entries[(other, net)] for net in mine if (other, net) in entries]
    for a in c.attachments:  # on an overlay network, the containers on the other hosts too
        overlay = t.networks[a.network].overlay
        for m in overlay.remote if overlay else ():
            names = " ".join(dict.fromkeys((m.container, *m.aliases)))
            lines += [f"{address}\t{names}\n" for address in m.addresses]
    if t.hostname:  # last: a container of the same name is found first
        lines.append(f"127.0.1.1\t{t.hostname}\n")
    return "".join(lines)


def hosts(b: Builder) -> None:
    """The hosts files, written in place (made first when missing): a change while the topology
    is up (nsgen/converge.py runs the step again) reaches the processes already running, which see
    the file `ip netns exec` bind-mounted when they started."""
    head = resolv_mark(b.t.name)
    entries = host_entries(b.t)
    for c in b.t.containers.values():
        folder = f"{NETNS_ETC}/{c.name}"
        path = f"{folder}/hosts"
        text = hosts_text(b.t, c, entries)
        b.add(
            Step(
                id=f"hosts:{c.name}",
                section="DNS",
                summary=f"Give {c.name} the names of the containers it shares a network with: ip netns exec shows {path} as "
                "/etc/hosts inside.",
                commands=(C("install", "-D", "-m", "0644", "/dev/null", path, only_if=(("test", "!", "-e", path),)),
                          C("dd", f"of={path}", "status=none", input=text)),
                checks=(Check("file", f"{path} names what {c.name} may reach by name", path=path, text=text),),
                undo=(
                    C("rm", "-f", path, only_if=(("grep", "-qF", head, path),)),
                    C("rmdir", "--ignore-fail-on-non-empty", folder, only_if=(("test", "-d", folder), b.netns_ours(c.name))),
                ),
                probe=(("test", "-e", path),),
                resource=f"file {path}",
                ours=(("grep", "-qF", head, path),),
                group=f"hosts:{c.name}",
            )
        )
