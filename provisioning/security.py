"""The fleet's security groups and their ingress rules: the least that lets the system work.

Why four groups and not one: a group's rules apply to its members, so what differs per role needs its own
group. `internal` opens Ray, RabbitMQ and gunicorn (every production nginx balances across every production
host's gunicorn) only to members of `internal` itself (remote_group_id, never a CIDR: addresses change,
membership does not); `ssh` admits SSH from the orchestration host's group when the fleet has one, else from
`ssh_cidr`; `admin` lets `ssh_cidr` reach the orchestration host; `web` is the only group open to the world,
on what nginx serves (443, and 80 only to redirect to it), and only production hosts are in it. Model
delivery is a `git push` over SSH from the development host to each production host's private address
(docs/contracts.md §4), which neither `ssh` nor `internal` admits: `deployer` (development only, no rules of
its own)
names the pushing host and `deploy` (production only) admits SSH from it, so a Ray worker still cannot reach
a production sshd. Egress stays Neutron's default.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from provisioning.fleet import Fleet


@dataclass(frozen=True, order=True)
class RuleSpec:
    """One ingress rule; the remote is a CIDR or a group NAME (resolved to an id only when applied)."""

    protocol: str
    port_min: int
    port_max: int
    remote_cidr: str | None = None
    remote_group: str | None = None
    ethertype: str = "IPv4"

    def describe(self) -> str:
        ports = str(self.port_min) if self.port_min == self.port_max else f"{self.port_min}-{self.port_max}"
        source = f"group {self.remote_group}" if self.remote_group else self.remote_cidr
        return f"{self.protocol}/{ports} from {source}"


@dataclass(frozen=True)
class GroupSpec:
    key: str  # internal | ssh | admin | web | deployer | deploy
    name: str
    description: str
    rules: tuple[RuleSpec, ...]


def _cidr_rule(port: int, cidr: str) -> RuleSpec:
    ethertype = "IPv6" if ipaddress.ip_network(cidr).version == 6 else "IPv4"
    return RuleSpec("tcp", port, port, remote_cidr=cidr, ethertype=ethertype)


def group_name(fleet: Fleet, key: str) -> str:
    return f"{fleet.name}-{key}"


def desired_groups(fleet: Fleet) -> list[GroupSpec]:
    """Every group the fleet needs, in creation order (a group before those whose rules refer to it)."""
    internal = group_name(fleet, "internal")
    admin = group_name(fleet, "admin")
    deployer = group_name(fleet, "deployer")
    fixed_ports = sorted({*fleet.ray.fixed_ports(), *fleet.rabbitmq_ports, fleet.gunicorn_port})
    internal_rules = [RuleSpec("tcp", p, p, remote_group=internal) for p in fixed_ports]
    internal_rules.append(
        RuleSpec("tcp", fleet.ray.min_worker_port, fleet.ray.max_worker_port, remote_group=internal)
    )
    if fleet.role("orchestration").count:
        ssh_rules = (RuleSpec("tcp", 22, 22, remote_group=admin),)
        ssh_from = "the orchestration host"
    else:
        ssh_rules = (_cidr_rule(22, fleet.ssh_cidr),)
        ssh_from = fleet.ssh_cidr
    return [
        GroupSpec(
            "internal",
            internal,
            f"stargazer fleet {fleet.name}: Ray, RabbitMQ and gunicorn between fleet members",
            tuple(sorted(internal_rules)),
        ),
        GroupSpec(
            "admin",
            admin,
            f"stargazer fleet {fleet.name}: SSH to the orchestration host",
            (_cidr_rule(22, fleet.ssh_cidr),),
        ),
        GroupSpec(
            "ssh", group_name(fleet, "ssh"), f"stargazer fleet {fleet.name}: SSH from {ssh_from}", ssh_rules
        ),
        GroupSpec(
            "web",
            group_name(fleet, "web"),
            f"stargazer fleet {fleet.name}: public HTTP(S) to production",
            tuple(_cidr_rule(port, cidr) for port in (80, 443) for cidr in ("0.0.0.0/0", "::/0")),
        ),
        GroupSpec(
            "deployer",
            deployer,
            f"stargazer fleet {fleet.name}: the development host, which pushes models (no ingress)",
            (),
        ),
        GroupSpec(
            "deploy",
            group_name(fleet, "deploy"),
            f"stargazer fleet {fleet.name}: SSH (git push of models) from the development host to production",
            (RuleSpec("tcp", 22, 22, remote_group=deployer),),
        ),
    ]


def groups_for_role(fleet: Fleet, role: str) -> list[str]:
    """The groups a server of this role is a member of."""
    keys = {
        "orchestration": ["admin"],
        "development": ["internal", "ssh", "deployer"],
        "ray_workers": ["internal", "ssh"],
        "production": ["internal", "ssh", "web", "deploy"],
    }[role]
    return [group_name(fleet, k) for k in keys]
