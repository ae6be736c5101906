"""Desired fleet vs what exists -> an ordered list of actions. Pure: no cloud calls, so --dry-run is exact.

Why a plan first: the same object is printed by --dry-run and executed by a real run, so what the dry run
shows is what happens. Counts converge by index: missing servers take the lowest free index, extras are the
highest indexes, so shrinking `ray_workers` from 3 to 1 deletes worker 3 then worker 2 and never a host that
was configured first. Rules converge too: an ingress rule not in the fleet description is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from provisioning.cloud import FIP_DESCRIPTION, TAG_FLEET, TAG_KEYPAIR, Observed, ServerInfo
from provisioning.fleet import ROLE_SLUGS, ROLES, Fleet, FleetError
from provisioning.security import RuleSpec, desired_groups, group_name, groups_for_role


@dataclass(frozen=True)
class ImportKeypair:
    name: str
    public_key: str
    source: str

    def line(self) -> str:
        return f"+ keypair {self.name} (import {self.source})"


@dataclass(frozen=True)
class CreateGroup:
    name: str
    description: str
    tags: tuple[str, ...]

    def line(self) -> str:
        return f"+ security group {self.name}"


@dataclass(frozen=True)
class SetGroupTags:
    name: str
    tags: tuple[str, ...]

    def line(self) -> str:
        return f"~ security group {self.name} tags -> {', '.join(self.tags)}"


@dataclass(frozen=True)
class AddRule:
    group: str
    rule: RuleSpec

    def line(self) -> str:
        return f"+ rule {self.group}: ingress {self.rule.ethertype} {self.rule.describe()}"


@dataclass(frozen=True)
class DeleteRule:
    group: str
    rule_id: str
    rule: RuleSpec

    def line(self) -> str:
        return f"- rule {self.group}: ingress {self.rule.ethertype} {self.rule.describe()} (unlisted)"


@dataclass(frozen=True)
class JoinGroups:
    """A kept server that lacks groups its role now has (e.g. one added to the fleet's design later)."""

    server: ServerInfo
    groups: tuple[str, ...]

    def line(self) -> str:
        return f"~ server {self.server.name} joins security group(s) {', '.join(self.groups)}"


@dataclass(frozen=True)
class DeleteFloatingIp:
    ip_id: str
    address: str
    reason: str

    def line(self) -> str:
        return f"- floating IP {self.address} ({self.reason})"


@dataclass(frozen=True)
class DeleteServer:
    server: ServerInfo
    reason: str

    def line(self) -> str:
        return f"- server {self.server.name} ({self.reason})"


@dataclass(frozen=True)
class CreateServer:
    name: str
    role: str
    index: int
    flavor: str
    image: str
    floating_ip: bool

    def line(self) -> str:
        fip = ", floating IP" if self.floating_ip else ""
        return f"+ server {self.name} ({self.role}, {self.flavor}, {self.image}{fip})"


@dataclass(frozen=True)
class WaitServer:
    server: ServerInfo
    floating_ip: bool  # attach one once ACTIVE

    def line(self) -> str:
        fip = ", then a floating IP" if self.floating_ip else ""
        return f"~ server {self.server.name} is {self.server.status}: wait for ACTIVE{fip}"


@dataclass(frozen=True)
class AttachFloatingIp:
    server: ServerInfo

    def line(self) -> str:
        return f"+ floating IP for {self.server.name}"


@dataclass(frozen=True)
class DeleteGroup:
    name: str
    group_id: str

    def line(self) -> str:
        return f"- security group {self.name}"


@dataclass(frozen=True)
class DeleteKeypair:
    name: str

    def line(self) -> str:
        return f"- keypair {self.name} (imported by this fleet)"


Action = (
    ImportKeypair
    | CreateGroup
    | SetGroupTags
    | AddRule
    | DeleteRule
    | JoinGroups
    | DeleteFloatingIp
    | DeleteServer
    | CreateServer
    | WaitServer
    | AttachFloatingIp
    | DeleteGroup
    | DeleteKeypair
)
# The order actions run in (and are printed in): access first, deletions before creations (frees quota).
PHASES: tuple[type, ...] = (
    ImportKeypair,
    CreateGroup,
    SetGroupTags,
    AddRule,
    DeleteRule,
    JoinGroups,
    DeleteFloatingIp,
    DeleteServer,
    CreateServer,
    WaitServer,
    AttachFloatingIp,
    DeleteGroup,
    DeleteKeypair,
)


@dataclass
class Plan:
    fleet: Fleet
    teardown: bool = False
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # "= exists" and "! problem" lines
    failed: list[ServerInfo] = field(default_factory=list)  # ERROR servers left in place

    def ordered(self) -> list[Action]:
        return sorted(self.actions, key=lambda a: PHASES.index(type(a)))

    def of(self, kind: type) -> list:
        return [a for a in self.actions if isinstance(a, kind)]

    @property
    def changes(self) -> bool:
        return bool(self.actions)

    def render(self) -> list[str]:
        what = "teardown" if self.teardown else "plan"
        lines = [f"{what} for fleet {self.fleet.name}:"]
        lines += [f"  {n}" for n in self.notes]
        lines += [f"  {a.line()}" for a in self.ordered()]
        if not self.actions:
            lines.append("  nothing to change")
        else:
            counts = {"+": 0, "-": 0, "~": 0}
            for a in self.actions:
                counts[a.line()[0]] += 1
            lines.append(f"  {counts['+']} to create, {counts['~']} to change, {counts['-']} to delete")
        return lines


def _same_key(a: str | None, b: str | None) -> bool:
    """OpenSSH keys compare on type + base64 blob (the comment is not part of the key)."""
    return (a or "").split()[:2] == (b or "").split()[:2]


def _keypair_actions(fleet: Fleet, obs: Observed, public_key: str | None, plan: Plan) -> bool:
    """Plan the keypair; returns whether this fleet owns (imported) it."""
    name = fleet.keypair.name
    internal = obs.groups.get(group_name(fleet, "internal"))
    owned = internal is not None and f"{TAG_KEYPAIR}{name}" in internal.tags
    if obs.keypair_exists:
        plan.notes.append(f"= keypair {name} exists" + (" (imported by this fleet)" if owned else ""))
        if public_key and not _same_key(public_key, obs.keypair_public_key):
            plan.notes.append(
                f"! keypair {name} exists with a different public key than "
                f"{fleet.keypair.public_key_file}: left unchanged"
            )
        return owned
    if public_key is None:
        raise FleetError(
            f"keypair '{name}' does not exist on the cloud and keypair.public_key_file is not set"
        )
    plan.actions.append(ImportKeypair(name, public_key, str(fleet.keypair.public_key_file)))
    return True


def _group_actions(fleet: Fleet, obs: Observed, keypair_owned: bool, plan: Plan) -> None:
    for spec in desired_groups(fleet):
        tags = [f"{TAG_FLEET}{fleet.name}"]
        if spec.key == "internal" and keypair_owned:
            tags.append(f"{TAG_KEYPAIR}{fleet.keypair.name}")
        existing = obs.groups.get(spec.name)
        if existing is None:
            plan.actions.append(CreateGroup(spec.name, spec.description, tuple(tags)))
            plan.actions += [AddRule(spec.name, r) for r in spec.rules]
            continue
        if sorted(existing.tags) != sorted(tags):
            plan.actions.append(SetGroupTags(spec.name, tuple(tags)))
        have = {r.spec: r for r in existing.rules}
        want = set(spec.rules)
        plan.actions += [AddRule(spec.name, r) for r in spec.rules if r not in have]
        plan.actions += [DeleteRule(spec.name, r.id, s) for s, r in sorted(have.items()) if s not in want]
        kept = len(want & set(have))
        plan.notes.append(f"= security group {spec.name} exists ({kept} of {len(want)} rules in place)")


def _server_actions(fleet: Fleet, obs: Observed, cleanup_failed: bool, plan: Plan) -> None:
    for name in obs.conflicts:
        plan.notes.append(
            f"! server {name} has a fleet name but not the fleet's metadata: left alone, its index is skipped"
        )
    fips_by_id = {ip.id: ip for ip in obs.floating_ips}
    for role in ROLES:
        spec = fleet.role(role)
        existing = sorted((s for s in obs.servers if s.role == role), key=lambda s: s.index)
        if cleanup_failed:
            for s in [s for s in existing if s.status == "ERROR"]:
                fault = s.fault or "no fault message"
                plan.actions.append(DeleteServer(s, f"ERROR: {fault}; --cleanup-failed"))
                existing.remove(s)
        for s in existing[spec.count :][::-1]:
            plan.actions.append(DeleteServer(s, f"{role} scaled down to {spec.count}"))
        kept = existing[: spec.count]
        for s in kept:
            if s.status == "ERROR":
                plan.notes.append(
                    f"! server {s.name} is ERROR: {s.fault or 'no fault message'} "
                    "(--cleanup-failed deletes and replaces it)"
                )
                plan.failed.append(s)
                continue
            missing = tuple(g for g in groups_for_role(fleet, role) if g not in s.groups)
            if missing:
                plan.actions.append(JoinGroups(s, missing))
            if s.status != "ACTIVE":
                plan.actions.append(WaitServer(s, spec.floating_ip and not s.floating_ip))
            else:
                where = s.floating_ip or s.private_ip or "no address"
                plan.notes.append(f"= server {s.name} ACTIVE ({where})")
            if spec.flavor and s.flavor and s.flavor != spec.flavor:
                plan.notes.append(
                    f"! server {s.name} has flavor {s.flavor}, the fleet file says {spec.flavor}: "
                    "not resized (delete it to replace it)"
                )
            ours = s.floating_ip_id in fips_by_id
            if spec.floating_ip and not s.floating_ip:
                if s.status == "ACTIVE":
                    plan.actions.append(AttachFloatingIp(s))
            elif not spec.floating_ip and ours and s.floating_ip_id and s.floating_ip:
                plan.actions.append(
                    DeleteFloatingIp(
                        s.floating_ip_id, s.floating_ip, f"{role} no longer asks for a floating IP"
                    )
                )
        used = {s.index for s in kept}
        used |= {
            int(n.rsplit("-", 1)[1])
            for n in obs.conflicts
            if n.startswith(f"{fleet.name}-{ROLE_SLUGS[role]}-")
        }
        index = 0
        for _ in range(spec.count - len(kept)):
            index += 1
            while index in used:
                index += 1
            plan.actions.append(
                CreateServer(
                    name=f"{fleet.name}-{ROLE_SLUGS[role]}-{index}",
                    role=role,
                    index=index,
                    flavor=spec.flavor or "",
                    image=fleet.image_for(role),
                    floating_ip=spec.floating_ip,
                )
            )
    deleted_ports = {a.server.port_id for a in plan.of(DeleteServer) if a.server.port_id}
    for ip in obs.floating_ips:
        if ip.port_id is None:
            plan.actions.append(DeleteFloatingIp(ip.id, ip.address, "made by this fleet, no longer attached"))
        elif ip.port_id in deleted_ports:
            plan.actions.append(DeleteFloatingIp(ip.id, ip.address, "its server is deleted"))


def build_plan(fleet: Fleet, obs: Observed, *, public_key: str | None, cleanup_failed: bool) -> Plan:
    plan = Plan(fleet)
    owned = _keypair_actions(fleet, obs, public_key, plan)
    _group_actions(fleet, obs, owned, plan)
    _server_actions(fleet, obs, cleanup_failed, plan)
    return plan


def build_teardown(fleet: Fleet, obs: Observed) -> Plan:
    """All the fleet made: floating IPs, servers, security groups, and the keypair if it imported it."""
    plan = Plan(fleet, teardown=True)
    plan.actions += [DeleteFloatingIp(ip.id, ip.address, "fleet teardown") for ip in obs.floating_ips]
    plan.actions += [DeleteServer(s, "fleet teardown") for s in sorted(obs.servers, key=lambda s: s.name)]
    for spec in desired_groups(fleet):
        if spec.name in obs.groups:
            plan.actions.append(DeleteGroup(spec.name, obs.groups[spec.name].id))
    internal = obs.groups.get(group_name(fleet, "internal"))
    name = fleet.keypair.name
    if obs.keypair_exists:
        if internal is not None and f"{TAG_KEYPAIR}{name}" in internal.tags:
            plan.actions.append(DeleteKeypair(name))
        else:
            plan.notes.append(f"= keypair {name} was not imported by this fleet: kept")
    for name in obs.conflicts:
        plan.notes.append(f"! server {name} has a fleet name but not the fleet's metadata: left alone")
    return plan


def floating_ip_description(fleet: Fleet, server_name: str) -> str:
    return FIP_DESCRIPTION.format(fleet=fleet.name, server=server_name)
