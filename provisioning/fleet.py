"""The declarative fleet description (fleet.yml): what should exist, validated before any cloud call.

Why a pydantic model: a typo in a YAML key or a count of -1 must stop the run with one clear line before a
single server is booted (extra keys are refused, not ignored). Paths inside the file are relative to the file.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROLES: tuple[str, ...] = ("orchestration", "development", "ray_workers", "production")
RoleName = Literal["orchestration", "development", "ray_workers", "production"]
# Server names are `<fleet>-<slug>-<index>`: hostnames may not contain underscores.
ROLE_SLUGS: dict[str, str] = {
    "orchestration": "orchestration",
    "development": "development",
    "ray_workers": "ray-worker",
    "production": "production",
}

Port = Annotated[int, Field(ge=1, le=65535)]


class FleetError(Exception):
    """A fleet file that cannot be used; the message is one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleSpec(_Strict):
    """How many servers of one role, on what, and whether they get a public address."""

    count: int = Field(0, ge=0, le=50)
    flavor: str | None = None
    image: str | None = None  # defaults to the fleet's image
    floating_ip: bool = False
    user_data: Path | None = None  # a cloud-init template replacing the role's built-in one

    @model_validator(mode="after")
    def _flavor_when_used(self) -> RoleSpec:
        if self.count > 0 and not self.flavor:
            raise ValueError("flavor is required when count > 0")
        return self


class Roles(_Strict):
    orchestration: RoleSpec = RoleSpec()
    development: RoleSpec = RoleSpec()
    ray_workers: RoleSpec = RoleSpec()
    production: RoleSpec = RoleSpec()

    @model_validator(mode="after")
    def _topology(self) -> Roles:
        if self.orchestration.count > 1:
            raise ValueError("orchestration.count must be 0 or 1")
        if self.development.count > 1:
            raise ValueError("development.count must be 0 or 1 (it is the Ray head)")
        if self.ray_workers.count > 0 and self.development.count != 1:
            raise ValueError("ray_workers need a Ray head: set development.count to 1")
        return self


class KeypairSpec(_Strict):
    """Import `public_key_file` under `name`, or (without it) use an existing keypair by name."""

    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_. -]+$")
    public_key_file: Path | None = None


class RayPorts(_Strict):
    """Every port Ray listens on, opened only between members of the fleet's internal group.

    Ray picks most of these at random unless told; the inventory hands the same numbers to the playbooks
    (`ray_head_port`, `ray_head_dashboard_port`, and the rest as `ray start` flags in `ray_node_port_args`,
    `ray_head_port_args`), so the firewall and the processes agree by construction. Defaults are Ray's own
    where it has fixed ones (6379, 8265, 10001, 52365).
    """

    gcs_port: Port = 6379
    dashboard_port: Port = 8265
    client_server_port: Port = 10001
    node_manager_port: Port = 6380
    object_manager_port: Port = 6381
    metrics_export_port: Port = 6382
    dashboard_agent_grpc_port: Port = 6383
    runtime_env_agent_port: Port = 6384
    dashboard_agent_listen_port: Port = 52365
    min_worker_port: Port = 10002
    max_worker_port: Port = 10999

    @model_validator(mode="after")
    def _range(self) -> RayPorts:
        if self.min_worker_port > self.max_worker_port:
            raise ValueError("min_worker_port must not exceed max_worker_port")
        fixed = self.fixed_ports()
        if len(set(fixed)) != len(fixed):
            raise ValueError("two Ray ports have the same number")
        if any(self.min_worker_port <= p <= self.max_worker_port for p in fixed):
            raise ValueError("a fixed Ray port lies inside the worker port range")
        return self

    def fixed_ports(self) -> list[int]:
        return [
            self.gcs_port,
            self.dashboard_port,
            self.client_server_port,
            self.node_manager_port,
            self.object_manager_port,
            self.metrics_export_port,
            self.dashboard_agent_grpc_port,
            self.runtime_env_agent_port,
            self.dashboard_agent_listen_port,
        ]

    def node_args(self) -> str:
        """`ray start` flags every node (head and workers) needs so it listens only on opened ports."""
        return (
            f"--node-manager-port={self.node_manager_port} "
            f"--object-manager-port={self.object_manager_port} "
            f"--metrics-export-port={self.metrics_export_port} "
            f"--dashboard-agent-grpc-port={self.dashboard_agent_grpc_port} "
            f"--dashboard-agent-listen-port={self.dashboard_agent_listen_port} "
            f"--runtime-env-agent-port={self.runtime_env_agent_port} "
            f"--min-worker-port={self.min_worker_port} --max-worker-port={self.max_worker_port}"
        )

    def head_args(self) -> str:
        """The head's extra flags (on top of node_args) for the ports the ray_head role has no variable of.

        The GCS and dashboard ports are the role's own `ray_head_port` / `ray_head_dashboard_port`, which the
        inventory sets directly: the head records `<private_ip>:<ray_head_port>` for the workers to join, so
        that number must be the role's variable, not a flag hidden in a string.
        """
        return f"--ray-client-server-port={self.client_server_port}"


class Fleet(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,29}$")
    cloud: str | None = None  # clouds.yaml entry; --cloud and OS_CLOUD take precedence
    image: str
    network: str
    external_network: str | None = None
    keypair: KeypairSpec
    ssh_cidr: str
    allow_ssh_from_anywhere: bool = False
    ssh_user: str = "ubuntu"
    # Which address Ansible uses (inventory ansible_host). auto: hosts behind an orchestration host of this
    # fleet get their private address (SSH is only open from its group); otherwise the floating IP if any.
    ansible_address: Literal["auto", "private", "floating"] = "auto"
    ray: RayPorts = RayPorts()
    rabbitmq_ports: tuple[Port, ...] = (5672,)
    # gunicorn on each production host's private address: every production nginx balances across all of
    # them, so it is opened inside the fleet only (security.py), and the inventory hands it to the playbooks.
    gunicorn_port: Port = 8000
    roles: Roles

    @field_validator("ssh_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError as err:
            raise ValueError(f"not an address or CIDR: {value!r}") from err

    @model_validator(mode="after")
    def _checks(self) -> Fleet:
        if ipaddress.ip_network(self.ssh_cidr).prefixlen == 0 and not self.allow_ssh_from_anywhere:
            raise ValueError(
                f"ssh_cidr {self.ssh_cidr} opens SSH to the world: give the orchestration host's "
                "address (x.x.x.x/32), or set allow_ssh_from_anywhere: true"
            )
        if any(self.role(r).floating_ip and self.role(r).count for r in ROLES) and not self.external_network:
            raise ValueError("external_network is required when a role asks for floating_ip")
        return self

    def role(self, name: str) -> RoleSpec:
        return getattr(self.roles, name)

    def image_for(self, role: str) -> str:
        return self.role(role).image or self.image


def _one_line(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def load_fleet(path: Path) -> Fleet:
    """Read and validate a fleet file; relative paths in it are resolved against its directory."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FleetError(f"fleet file not found: {path}") from err
    except yaml.YAMLError as err:
        raise FleetError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(raw, dict):
        raise FleetError(f"{path}: expected a mapping at the top level")
    try:
        fleet = Fleet.model_validate(raw)
    except ValidationError as err:
        raise FleetError(f"{path}: {_one_line(err)}") from err
    base = path.resolve().parent

    def resolve(p: Path | None) -> Path | None:
        return None if p is None else (base / p.expanduser()).resolve()

    roles = {
        r: fleet.role(r).model_copy(update={"user_data": resolve(fleet.role(r).user_data)}) for r in ROLES
    }
    keypair = fleet.keypair.model_copy(update={"public_key_file": resolve(fleet.keypair.public_key_file)})
    return fleet.model_copy(update={"roles": Roles(**roles), "keypair": keypair})


def read_public_key(spec: KeypairSpec) -> str | None:
    """The public key to import, checked so that a private key is never sent anywhere."""
    if spec.public_key_file is None:
        return None
    try:
        text = spec.public_key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise FleetError(f"keypair.public_key_file not found: {spec.public_key_file}") from err
    if "PRIVATE KEY" in text:
        raise FleetError(
            f"keypair.public_key_file {spec.public_key_file} holds a PRIVATE key: give the .pub file"
        )
    if not text.startswith(("ssh-", "ecdsa-", "sk-")) or len(text.splitlines()) != 1:
        raise FleetError(f"keypair.public_key_file {spec.public_key_file} is not an OpenSSH public key")
    return text
