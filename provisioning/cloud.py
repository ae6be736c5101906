"""Everything that talks to OpenStack, through openstacksdk's proxies, and nothing else.

Why a thin wrapper: the plan and the inventory work on plain dataclasses (`Observed`, `ServerInfo`), so they
can be reasoned about and tested without a cloud, and every openstacksdk/keystoneauth exception is turned
into ONE line here (`CloudError`), so a quota or a wrong password never reaches the user as a traceback.
Credentials come only from clouds.yaml (`openstack.connect(cloud=...)`); nothing here logs a request body.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import openstack
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from provisioning.fleet import ROLE_SLUGS, Fleet
from provisioning.security import RuleSpec, desired_groups

# Server metadata keys that mark a server as a member of a fleet (also what the dynamic inventory groups by).
META_FLEET, META_ROLE, META_INDEX = "fleet", "role", "index"
TAG_FLEET = "stargazer-fleet:"  # on the internal security group
TAG_KEYPAIR = "stargazer-keypair-created:"  # records that WE imported the keypair, so --delete may remove it
FIP_DESCRIPTION = "stargazer fleet {fleet}: {server}"


class CloudError(Exception):
    """A cloud failure the user can act on; the message is one line and carries no secret."""


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


@contextmanager
def cloud_errors(action: str, cloud_name: str = "") -> Iterator[None]:
    """Turn openstacksdk/keystoneauth exceptions raised while doing `action` into one-line CloudErrors."""
    try:
        yield
    except (CloudError, os_exc.ResourceFailure, os_exc.ResourceTimeout):
        raise  # CloudError is already one line; failures and timeouts of a wait are reported by the caller
    except os_exc.ConfigException as err:
        raise CloudError(f"clouds.yaml: {_first_line(err)}") from err
    except (ks_exc.Unauthorized, ks_exc.AuthorizationFailure) as err:
        raise CloudError(
            f"authentication failed for cloud '{cloud_name}' (HTTP 401): check the credentials in clouds.yaml"
        ) from err
    except ks_exc.MissingRequiredOptions as err:
        raise CloudError(f"clouds.yaml: cloud '{cloud_name}': {_first_line(err)}") from err
    except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.DiscoveryFailure) as err:
        raise CloudError(f"cannot reach cloud '{cloud_name}' while {action}: {_first_line(err)}") from err
    except ks_exc.HttpError as err:
        raise CloudError(_http_line(action, cloud_name, err.http_status, err.message)) from err
    except os_exc.HttpException as err:
        raise CloudError(_http_line(action, cloud_name, err.status_code, err.details or err.message)) from err
    except os_exc.SDKException as err:
        raise CloudError(f"{action}: {_first_line(err)}") from err


def _http_line(action: str, cloud_name: str, status: int | None, details: object) -> str:
    detail = _first_line(details)
    if status == 401:
        return (
            f"authentication failed for cloud '{cloud_name}' (HTTP 401): check the credentials in clouds.yaml"
        )
    if status in (403, 409, 413) and "quota" in detail.lower():
        return f"quota exceeded while {action}: {detail}"
    return f"{action} failed (HTTP {status}): {detail}"


@dataclass(frozen=True)
class ServerInfo:
    id: str
    name: str
    role: str
    index: int
    status: str
    fault: str | None = None
    flavor: str | None = None
    key_name: str | None = None
    private_ip: str | None = None
    floating_ip: str | None = None
    floating_ip_id: str | None = None
    port_id: str | None = None
    groups: tuple[str, ...] = ()  # security group names (Nova's view)


@dataclass(frozen=True)
class ExistingRule:
    id: str
    spec: RuleSpec


@dataclass(frozen=True)
class ExistingGroup:
    id: str
    name: str
    tags: tuple[str, ...]
    rules: tuple[ExistingRule, ...]  # ingress only: egress is Neutron's default and left alone


@dataclass(frozen=True)
class FloatingIp:
    id: str
    address: str
    port_id: str | None
    description: str


@dataclass
class Observed:
    """What exists now: looked up with GETs only, so building it is safe in --dry-run."""

    network_id: str | None = None
    external_network_id: str | None = None
    image_ids: dict[str, str] = field(default_factory=dict)  # role -> image id
    flavor_ids: dict[str, str] = field(default_factory=dict)  # role -> flavor id
    keypair_public_key: str | None = None
    keypair_exists: bool = False
    groups: dict[str, ExistingGroup] = field(default_factory=dict)  # by name
    servers: list[ServerInfo] = field(default_factory=list)
    floating_ips: list[FloatingIp] = field(default_factory=list)  # made by this fleet, attached or not
    conflicts: list[str] = field(
        default_factory=list
    )  # servers with a fleet name but not the fleet's metadata


class Cloud:
    """openstacksdk operations for one fleet on one cloud."""

    def __init__(self, conn: Any, cloud_name: str, poll_interval: float = 2.0) -> None:
        self.conn = conn
        self.cloud_name = cloud_name
        self.poll_interval = poll_interval

    @classmethod
    def connect(cls, cloud_name: str, poll_interval: float = 2.0) -> Cloud:
        """Open a connection from clouds.yaml (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack)."""
        with cloud_errors("reading clouds.yaml", cloud_name):
            conn = openstack.connect(cloud=cloud_name)
        return cls(conn, cloud_name, poll_interval)

    def errors(self, action: str) -> Any:
        return cloud_errors(action, self.cloud_name)

    # ------------------------------------------------------------------ reads
    def observe(self, fleet: Fleet, roles_in_use: list[str], *, resolve_refs: bool = True) -> Observed:
        """The fleet's current state. With resolve_refs, also check that image/flavor/network exist."""
        obs = Observed()
        c = self.conn
        if resolve_refs:
            with self.errors("looking up the network"):
                obs.network_id = self._find(c.network.find_network, fleet.network, "network")
                if fleet.external_network:
                    obs.external_network_id = self._find(
                        c.network.find_network, fleet.external_network, "external network"
                    )
            seen: dict[tuple[str, str | None], str] = {}  # roles often share an image or a flavor
            for role in roles_in_use:
                with self.errors(f"looking up the image and flavor for {role}"):
                    for kind, finder, name, into in (
                        ("image", c.image.find_image, fleet.image_for(role), obs.image_ids),
                        ("flavor", c.compute.find_flavor, fleet.role(role).flavor, obs.flavor_ids),
                    ):
                        if (kind, name) not in seen:
                            seen[(kind, name)] = self._find(finder, name, kind)
                        into[role] = seen[(kind, name)]
        with self.errors("looking up the keypair"):
            keypair = self._find_or_none(c.compute.find_keypair, fleet.keypair.name)
            obs.keypair_exists = keypair is not None
            obs.keypair_public_key = keypair.public_key if keypair is not None else None
        with self.errors("listing security groups"):
            obs.groups = self._groups(fleet)
        with self.errors("listing servers"):
            obs.servers, obs.conflicts = self._servers(fleet)
        with self.errors("listing floating IPs"):
            obs.floating_ips = self._floating_ips(fleet)
        if obs.servers:
            obs.servers = self._with_addresses(obs.servers, obs.floating_ips)
        return obs

    @staticmethod
    def _find_or_none(finder: Any, name: str | None) -> Any:
        """A find_* proxy call, None when nothing matches (ignore_missing=True is deprecated in the SDK)."""
        try:
            return finder(name, ignore_missing=False)
        except os_exc.NotFoundException:
            return None

    def _find(self, finder: Any, name: str | None, what: str) -> str:
        found = self._find_or_none(finder, name)
        if found is None:
            raise CloudError(f"{what} '{name}' not found on cloud '{self.cloud_name}'")
        return str(found.id)

    def _groups(self, fleet: Fleet) -> dict[str, ExistingGroup]:
        every = list(self.conn.network.security_groups())
        names_by_id = {g.id: g.name for g in every}
        wanted = {g.name for g in desired_groups(fleet)}
        raw = [g for g in every if g.name in wanted]
        groups: dict[str, ExistingGroup] = {}
        for g in raw:
            if g.name in groups:
                raise CloudError(f"two security groups are named '{g.name}': delete one, then run again")
            rules = []
            for r in self.conn.network.security_group_rules(security_group_id=g.id, direction="ingress"):
                if r.direction != "ingress":
                    continue
                spec = RuleSpec(
                    protocol=r.protocol or "any",
                    port_min=r.port_range_min or 0,
                    port_max=r.port_range_max or 0,
                    remote_cidr=r.remote_ip_prefix,
                    remote_group=names_by_id.get(r.remote_group_id, r.remote_group_id)
                    if r.remote_group_id
                    else None,
                    ethertype=r.ether_type or "IPv4",
                )
                rules.append(ExistingRule(r.id, spec))
            groups[g.name] = ExistingGroup(g.id, g.name, tuple(g.tags or ()), tuple(rules))
        return groups

    def _servers(self, fleet: Fleet) -> tuple[list[ServerInfo], list[str]]:
        slugs = "|".join(re.escape(s) for s in ROLE_SLUGS.values())
        pattern = re.compile(rf"^{re.escape(fleet.name)}-({slugs})-(\d+)$")
        role_by_slug = {v: k for k, v in ROLE_SLUGS.items()}
        servers, conflicts = [], []
        for s in self.conn.compute.servers(details=True, name=f"^{re.escape(fleet.name)}-"):
            meta = s.metadata or {}
            match = pattern.match(s.name or "")
            if meta.get(META_FLEET) != fleet.name:
                if match:
                    conflicts.append(s.name)
                continue
            role = meta.get(META_ROLE) or (role_by_slug[match.group(1)] if match else "")
            index_text = meta.get(META_INDEX) or (match.group(2) if match else "0")
            fault = (s.fault or {}).get("message") if s.status == "ERROR" else None
            flavor = (s.flavor or {}).get("original_name") if s.flavor else None
            servers.append(
                ServerInfo(
                    id=s.id,
                    name=s.name,
                    role=role,
                    index=int(index_text) if index_text.isdigit() else 0,
                    status=s.status,
                    fault=fault,
                    flavor=flavor,
                    key_name=s.key_name,
                    groups=tuple(sorted({g["name"] for g in s.security_groups or [] if g.get("name")})),
                )
            )
        return sorted(servers, key=lambda s: (s.role, s.index)), conflicts

    def _floating_ips(self, fleet: Fleet) -> list[FloatingIp]:
        prefix = FIP_DESCRIPTION.format(fleet=fleet.name, server="")
        return [
            FloatingIp(ip.id, ip.floating_ip_address, ip.port_id, ip.description or "")
            for ip in self.conn.network.ips()
            if (ip.description or "").startswith(prefix)
        ]

    def _with_addresses(self, servers: list[ServerInfo], fips: list[FloatingIp]) -> list[ServerInfo]:
        """Fixed and floating addresses from Neutron (Nova's address cache lags behind a new floating IP)."""
        with self.errors("listing ports"):
            ports: dict[str, Any] = {}
            for s in servers:
                for port in self.conn.network.ports(device_id=s.id):
                    ports.setdefault(s.id, port)
            all_fips = {ip.port_id: ip for ip in fips if ip.port_id}
            out = []
            for s in servers:
                port = ports.get(s.id)
                if port is None:
                    out.append(s)
                    continue
                fixed = next(
                    (f["ip_address"] for f in port.fixed_ips or [] if ":" not in f["ip_address"]), None
                )
                fip = all_fips.get(port.id)
                if fip is None:  # a floating IP someone attached by hand still counts as the host's address
                    fip_obj = next(iter(self.conn.network.ips(port_id=port.id)), None)
                    fip = (
                        FloatingIp(
                            fip_obj.id, fip_obj.floating_ip_address, port.id, fip_obj.description or ""
                        )
                        if fip_obj is not None
                        else None
                    )
                out.append(
                    replace(
                        s,
                        private_ip=fixed,
                        port_id=port.id,
                        floating_ip=fip.address if fip else None,
                        floating_ip_id=fip.id if fip else None,
                    )
                )
            return out

    # ----------------------------------------------------------------- writes
    def create_keypair(self, name: str, public_key: str) -> None:
        with self.errors(f"importing keypair {name}"):
            self.conn.compute.create_keypair(name=name, public_key=public_key)

    def delete_keypair(self, name: str) -> None:
        with self.errors(f"deleting keypair {name}"):
            self.conn.compute.delete_keypair(name, ignore_missing=True)

    def create_group(self, name: str, description: str, tags: list[str]) -> str:
        with self.errors(f"creating security group {name}"):
            group = self.conn.network.create_security_group(name=name, description=description)
            if tags:
                self.conn.network.set_tags(group, tags)
            return str(group.id)

    def set_group_tags(self, group_id: str, tags: list[str]) -> None:
        with self.errors("tagging a security group"):
            group = self.conn.network.get_security_group(group_id)
            self.conn.network.set_tags(group, tags)

    def delete_group(self, group_id: str, name: str) -> None:
        with self.errors(f"deleting security group {name}"):
            self.conn.network.delete_security_group(group_id, ignore_missing=True)

    def add_rule(self, group_id: str, rule: RuleSpec, remote_group_id: str | None) -> None:
        with self.errors(f"adding rule {rule.describe()}"):
            self.conn.network.create_security_group_rule(
                security_group_id=group_id,
                direction="ingress",
                ethertype=rule.ethertype,
                protocol=rule.protocol,
                port_range_min=rule.port_min,
                port_range_max=rule.port_max,
                remote_ip_prefix=rule.remote_cidr,
                remote_group_id=remote_group_id,
            )

    def delete_rule(self, rule_id: str) -> None:
        with self.errors("deleting a security group rule"):
            self.conn.network.delete_security_group_rule(rule_id, ignore_missing=True)

    def join_group(self, server_id: str, server_name: str, group_name: str) -> None:
        with self.errors(f"adding server {server_name} to security group {group_name}"):
            self.conn.compute.add_security_group_to_server(server_id, group_name)

    def create_server(
        self,
        *,
        name: str,
        role: str,
        index: int,
        fleet: str,
        image_id: str,
        flavor_id: str,
        network_id: str,
        key_name: str,
        groups: list[str],
        user_data: str,
    ) -> Any:
        with self.errors(f"creating server {name}"):
            return self.conn.compute.create_server(
                name=name,
                image_id=image_id,
                flavor_id=flavor_id,
                networks=[{"uuid": network_id}],
                key_name=key_name,
                security_groups=[{"name": g} for g in groups],
                user_data=base64.b64encode(user_data.encode()).decode("ascii"),
                metadata={META_FLEET: fleet, META_ROLE: role, META_INDEX: str(index)},
            )

    def wait_active(self, server_id: str, timeout: float) -> Any:
        """Wait until ACTIVE; ResourceFailure (ERROR) and ResourceTimeout propagate to the caller."""
        with self.errors("waiting for a server"):
            server = self.conn.compute.get_server(server_id)
            return self.conn.compute.wait_for_server(
                server,
                status="ACTIVE",
                failures=["ERROR"],
                interval=self.poll_interval,
                wait=max(timeout, 0.001),
            )

    def server_fault(self, server_id: str) -> str:
        with self.errors("reading a server's fault"):
            server = self.conn.compute.get_server(server_id)
            return str((server.fault or {}).get("message") or "no fault message")

    def server_status(self, server_id: str) -> str:
        with self.errors("reading a server's status"):
            return str(self.conn.compute.get_server(server_id).status)

    def delete_server(self, server_id: str, name: str) -> None:
        with self.errors(f"deleting server {name}"):
            self.conn.compute.delete_server(server_id, ignore_missing=True)

    def wait_deleted(self, server_id: str, name: str, timeout: float) -> None:
        try:
            with self.errors(f"deleting server {name}"):
                try:
                    server = self.conn.compute.get_server(server_id)
                except os_exc.NotFoundException:
                    return  # already gone
                wait = max(timeout, 1e-3)
                self.conn.compute.wait_for_delete(server, interval=self.poll_interval, wait=wait)
        except os_exc.ResourceTimeout as err:
            raise CloudError(f"server {name} still exists {timeout:g} s after it was asked to go") from err

    def server_port(self, server_id: str, network_id: str) -> str:
        with self.errors("finding a server's port"):
            port = next(iter(self.conn.network.ports(device_id=server_id, network_id=network_id)), None)
        if port is None:
            raise CloudError(f"server {server_id} has no port on the fleet network")
        return str(port.id)

    def create_floating_ip(self, external_network_id: str, port_id: str, description: str) -> str:
        with self.errors("creating a floating IP"):
            ip = self.conn.network.create_ip(
                floating_network_id=external_network_id, port_id=port_id, description=description
            )
            return str(ip.floating_ip_address)

    def delete_floating_ip(self, ip_id: str) -> None:
        with self.errors("deleting a floating IP"):
            self.conn.network.delete_ip(ip_id, ignore_missing=True)
