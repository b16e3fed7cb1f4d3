"""nsgen: build container-style networks from namespaces, veth pairs, bridges, routes and iptables.

A topology file is read (`load`), validated and completed (`resolve`, reading the host through
`hostinfo`) into the records of `models`, compiled into one ordered plan of steps (`plan`), and
that plan is either laid out as bash scripts (`render`) or executed (`execute`).
"""

__version__ = "0.1.0"
