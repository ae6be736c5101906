"""Carry out a Plan against the cloud, saying what it does as it goes.

Why servers are created all at once and then waited for: a cloud builds them in parallel, so POSTing every
server first and then waiting with one shared deadline makes the run as long as the slowest boot, not the
sum. A server that ends in ERROR is reported with Nova's `fault` message (and deleted with
--cleanup-failed); one still building at the deadline is reported and left to finish. Either makes the run
fail (exit 1) without undoing what did succeed: the next run picks up from what exists.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from openstack import exceptions as os_exc
from tqdm import tqdm

from provisioning.cloud import Cloud, Observed
from provisioning.fleet import Fleet
from provisioning.plan import (
    AddRule,
    AttachFloatingIp,
    CreateGroup,
    CreateServer,
    DeleteFloatingIp,
    DeleteGroup,
    DeleteKeypair,
    DeleteRule,
    DeleteServer,
    ImportKeypair,
    JoinGroups,
    Plan,
    SetGroupTags,
    WaitServer,
    floating_ip_description,
)
from provisioning.security import groups_for_role
from provisioning.userdata import render_user_data

Echo = Callable[[str], None]


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # one line each: ERROR with fault, or timeout

    @property
    def ok(self) -> bool:
        return not self.failed


def apply_plan(
    plan: Plan, cloud: Cloud, obs: Observed, *, timeout: float, cleanup_failed: bool, echo: Echo
) -> Outcome:
    fleet = plan.fleet
    out = Outcome()
    group_ids = {name: g.id for name, g in obs.groups.items()}
    to_wait: list[tuple[str, str, bool]] = []  # (server name, id, attach a floating IP once ACTIVE)
    to_attach: list[tuple[str, str]] = []  # (server name, id)

    deleting: list[tuple[str, str]] = []  # (server name, id): DELETEs sent, gone not yet confirmed

    for action in plan.ordered():
        if deleting and not isinstance(action, DeleteServer):
            # deletions free quota and release security groups: confirm them before anything else happens
            _wait_deleted(cloud, deleting, timeout=timeout, echo=echo)
            deleting.clear()
        match action:
            case ImportKeypair(name=name, public_key=key):
                echo(f"importing keypair {name}")
                cloud.create_keypair(name, key)
                out.created.append(f"keypair {name}")
            case CreateGroup(name=name, description=desc, tags=tags):
                echo(f"creating security group {name}")
                group_ids[name] = cloud.create_group(name, desc, list(tags))
                out.created.append(f"security group {name}")
            case SetGroupTags(name=name, tags=tags):
                cloud.set_group_tags(group_ids[name], list(tags))
            case AddRule(group=group, rule=rule):
                echo(f"  rule {group}: {rule.describe()}")
                remote = group_ids[rule.remote_group] if rule.remote_group else None
                cloud.add_rule(group_ids[group], rule, remote)
            case DeleteRule(group=group, rule_id=rule_id, rule=rule):
                echo(f"  removing rule {group}: {rule.describe()}")
                cloud.delete_rule(rule_id)
            case JoinGroups(server=server, groups=groups):
                for group in groups:
                    echo(f"adding server {server.name} to security group {group}")
                    cloud.join_group(server.id, server.name, group)
            case DeleteFloatingIp(ip_id=ip_id, address=address):
                echo(f"releasing floating IP {address}")
                cloud.delete_floating_ip(ip_id)
                out.deleted.append(f"floating IP {address}")
            case DeleteServer(server=server, reason=reason):
                echo(f"deleting server {server.name} ({reason})")
                cloud.delete_server(server.id, server.name)
                out.deleted.append(f"server {server.name}")
                deleting.append((server.name, server.id))
            case CreateServer():
                echo(f"creating server {action.name}")
                server = cloud.create_server(
                    name=action.name,
                    role=action.role,
                    index=action.index,
                    fleet=fleet.name,
                    image_id=obs.image_ids[action.role],
                    flavor_id=obs.flavor_ids[action.role],
                    network_id=obs.network_id or "",
                    key_name=fleet.keypair.name,
                    groups=groups_for_role(fleet, action.role),
                    user_data=render_user_data(
                        role=action.role,
                        fleet=fleet.name,
                        hostname=action.name,
                        index=action.index,
                        template=fleet.role(action.role).user_data,
                    ),
                )
                out.created.append(f"server {action.name}")
                to_wait.append((action.name, server.id, action.floating_ip))
            case WaitServer(server=server, floating_ip=floating_ip):
                to_wait.append((server.name, server.id, floating_ip))
            case AttachFloatingIp(server=server):
                to_attach.append((server.name, server.id))
            case DeleteGroup(name=name, group_id=group_id):
                echo(f"deleting security group {name}")
                cloud.delete_group(group_id, name)
                out.deleted.append(f"security group {name}")
            case DeleteKeypair(name=name):
                echo(f"deleting keypair {name}")
                cloud.delete_keypair(name)
                out.deleted.append(f"keypair {name}")

    if deleting:
        _wait_deleted(cloud, deleting, timeout=timeout, echo=echo)
    if to_wait:
        active = _wait_all(cloud, to_wait, timeout=timeout, cleanup_failed=cleanup_failed, echo=echo, out=out)
        to_attach += [(name, sid) for name, sid, attach in to_wait if attach and sid in active]
    for name, server_id in to_attach:
        _attach_floating_ip(cloud, fleet, obs, name=name, server_id=server_id, echo=echo, out=out)
    return out


def _wait_all(
    cloud: Cloud,
    servers: list[tuple[str, str, bool]],
    *,
    timeout: float,
    cleanup_failed: bool,
    echo: Echo,
    out: Outcome,
) -> set[str]:
    """Wait for every server under one deadline; returns the ids that became ACTIVE."""
    deadline = time.monotonic() + timeout
    active: set[str] = set()
    with tqdm(
        total=len(servers), desc="waiting for ACTIVE", unit="server", file=sys.stderr, disable=None
    ) as bar:
        for name, server_id, _attach in servers:
            try:
                cloud.wait_active(server_id, deadline - time.monotonic())
            except os_exc.ResourceFailure:
                fault = cloud.server_fault(server_id)
                line = f"server {name} went to ERROR: {fault}"
                if cleanup_failed:
                    cloud.delete_server(server_id, name)
                    cloud.wait_deleted(server_id, name, max(deadline - time.monotonic(), 30.0))
                    out.deleted.append(f"server {name}")
                    line += " (deleted: --cleanup-failed)"
                else:
                    line += " (left for inspection; --cleanup-failed deletes it)"
                echo(f"! {line}")
                out.failed.append(line)
            except os_exc.ResourceTimeout:
                status = cloud.server_status(server_id)
                line = f"server {name} is not ACTIVE after {timeout:g} s (status {status}): left to finish"
                echo(f"! {line}")
                out.failed.append(line)
            else:
                active.add(server_id)
                echo(f"  server {name} ACTIVE")
            bar.update(1)
    return active


def _wait_deleted(cloud: Cloud, servers: list[tuple[str, str]], *, timeout: float, echo: Echo) -> None:
    deadline = time.monotonic() + timeout
    for name, server_id in servers:
        cloud.wait_deleted(server_id, name, deadline - time.monotonic())
    echo(f"  {len(servers)} server(s) deleted")


def _attach_floating_ip(
    cloud: Cloud, fleet: Fleet, obs: Observed, *, name: str, server_id: str, echo: Echo, out: Outcome
) -> None:
    if not obs.external_network_id or not obs.network_id:
        raise AssertionError("floating IPs need the external and fleet networks resolved")
    port_id = cloud.server_port(server_id, obs.network_id)
    address = cloud.create_floating_ip(obs.external_network_id, port_id, floating_ip_description(fleet, name))
    echo(f"  floating IP {address} -> {name}")
    out.created.append(f"floating IP {address}")
