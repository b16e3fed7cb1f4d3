"""Each container's resolver: /etc/netns/<name>/resolv.conf, which ip netns exec shows as /etc/resolv.conf."""

from __future__ import annotations

from nsgen.names import NETNS_ETC, resolv_mark
from nsgen.plan.builder import Builder
from nsgen.plan.steps import C, Step, write_file


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
                probe=(("test", "-e", folder),),
                resource=f"directory {folder}",
                ours=(("grep", "-qF", head, conf),),
                group=f"container:{c.name}",
            )
        )
