"""A stateful fake OpenStack cloud at the HTTP level, for driving the REAL openstacksdk offline.

Why HTTP level: openstacksdk's own unit tests (openstack/tests/unit/base.py) mock the wire with requests-mock,
so discovery, auth, microversions, pagination, find-by-name and error parsing all run as in production. A
per-call script of expected requests (their `register_uris`) cannot express "run it twice, the second run
creates nothing", so this fake keeps state instead: Keystone v3 (discovery + password token with a service
catalog), Nova (flavors, keypairs, servers with BUILD -> ACTIVE/ERROR and `fault`, quota), Neutron (networks,
ports made by server boots, security groups with default egress rules, rules, tags, floating IPs, quota) and
Glance (image lookup). It mimics the real services' answers closely enough for openstacksdk to parse them, and
records every call so tests can assert "no mutating request" or "no POST".
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests_mock
from keystoneauth1 import fixture as ks_fixture

IDENTITY = "https://identity.cloud.test"
COMPUTE = "https://compute.cloud.test/v2.1"
NETWORK = "https://network.cloud.test"
IMAGE = "https://image.cloud.test"
REGION = "RegionOne"

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class Call:
    method: str
    service: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakeError(Exception):
    """An HTTP error answer in the service's own error format."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def nova_error(status: int, kind: str, message: str) -> FakeError:
    return FakeError(status, {kind: {"code": status, "message": message}})


def neutron_error(status: int, kind: str, message: str) -> FakeError:
    return FakeError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


@dataclass
class FakeCloud:
    """The cloud's state plus the knobs tests turn (quota, failing boots, slow boots, wrong password)."""

    username: str = "alice"
    password: str = "correct-horse-battery-staple"
    project_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Knobs.
    build_polls: int = 1  # GETs a new server answers BUILD before it turns ACTIVE
    fail_on_build: dict[str, str] = field(default_factory=dict)  # server name -> fault message
    never_active: set[str] = field(default_factory=set)  # server names stuck in BUILD
    delete_polls: int = 1  # GETs a deleted server still answers (task_state "deleting") before it is gone
    quota_status: int = 403  # Nova answers over-quota boots with 403 (older/other limits with 413)
    quota_instances: int = 20
    quota_floating_ips: int = 10
    # State.
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    keypairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    ports: dict[str, dict[str, Any]] = field(default_factory=dict)
    security_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    floating_ips: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    unhandled: list[str] = field(default_factory=list)
    tokens_issued: int = 0

    def __post_init__(self) -> None:
        self._fixed_ips = (f"10.0.0.{i}" for i in itertools.count(10))
        self._public_ips = (f"172.24.4.{i}" for i in itertools.count(100))
        self.add_image("Ubuntu 24.04")
        for name, vcpus, ram in (("m1.small", 1, 2048), ("m1.medium", 2, 4096), ("m1.large", 4, 8192)):
            self.add_flavor(name, vcpus, ram)
        self.add_network("stargazer-net", external=False)
        self.add_network("public", external=True)

    # ----------------------------------------------------------------- seeding
    def add_image(self, name: str) -> str:
        image_id = str(uuid.uuid4())
        self.images[image_id] = {
            "id": image_id,
            "name": name,
            "status": "active",
            "visibility": "public",
            "disk_format": "qcow2",
            "container_format": "bare",
            "min_disk": 0,
            "min_ram": 0,
            "tags": [],
            "protected": False,
            "self": f"/v2/images/{image_id}",
            "file": f"/v2/images/{image_id}/file",
            "schema": "/v2/schemas/image",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
        return image_id

    def add_flavor(self, name: str, vcpus: int, ram: int) -> str:
        flavor_id = str(uuid.uuid4())
        self.flavors[flavor_id] = {
            "id": flavor_id,
            "name": name,
            "vcpus": vcpus,
            "ram": ram,
            "disk": 20,
            "swap": 0,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "os-flavor-access:is_public": True,
            "rxtx_factor": 1.0,
            "description": None,
            "extra_specs": {},
            "links": [],
        }
        return flavor_id

    def add_network(self, name: str, *, external: bool) -> str:
        network_id = str(uuid.uuid4())
        self.networks[network_id] = {
            "id": network_id,
            "name": name,
            "status": "ACTIVE",
            "admin_state_up": True,
            "shared": False,
            "router:external": external,
            "subnets": [str(uuid.uuid4())],
            "project_id": self.project_id,
            "tenant_id": self.project_id,
            "tags": [],
            "mtu": 1450,
            "description": "",
        }
        return network_id

    # ---------------------------------------------------------------- wiring
    def install(self, mocker: requests_mock.Mocker) -> FakeCloud:
        """Route every request to a *.cloud.test host through this fake."""
        mocker.register_uri(
            requests_mock.ANY, re.compile(r"https://[a-z]+\.cloud\.test(/.*)?$"), text=self._handle
        )
        return self

    def clouds_yaml(self, cloud_name: str = "fake", password: str | None = None) -> str:
        """A clouds.yaml for this fake (the password can be made wrong to provoke a 401)."""
        pw = self.password if password is None else password
        return (
            "clouds:\n"
            f"  {cloud_name}:\n"
            "    auth:\n"
            f"      auth_url: {IDENTITY}\n"
            f"      username: {self.username}\n"
            f"      password: {pw}\n"
            "      project_name: stargazer\n"
            "      user_domain_name: Default\n"
            "      project_domain_name: Default\n"
            f"    region_name: {REGION}\n"
            "    identity_api_version: 3\n"
        )

    # ------------------------------------------------------- test inspection
    def mutating_calls(self) -> list[str]:
        return [
            f"{c.method} {c.service}{c.path}"
            for c in self.calls
            if c.method in MUTATING and c.service != "identity"
        ]

    def server_names(self) -> list[str]:
        return sorted(s["name"] for s in self.servers.values())

    def group_by_name(self, name: str) -> dict[str, Any]:
        matches = [g for g in self.security_groups.values() if g["name"] == name]
        assert len(matches) == 1, f"{len(matches)} security groups named {name}"
        return matches[0]

    def ingress_rules(self, group_name: str) -> set[tuple[Any, ...]]:
        """Ingress rules of a group as (protocol, min, max, remote_ip_prefix, remote group NAME)."""
        group = self.group_by_name(group_name)
        out = set()
        for rule in self.rules.values():
            if rule["security_group_id"] != group["id"] or rule["direction"] != "ingress":
                continue
            remote = (
                self.security_groups[rule["remote_group_id"]]["name"] if rule["remote_group_id"] else None
            )
            out.add(
                (
                    rule["protocol"],
                    rule["port_range_min"],
                    rule["port_range_max"],
                    rule["remote_ip_prefix"],
                    remote,
                )
            )
        return out

    def is_empty(self) -> bool:
        """Nothing a fleet run could have made is left (seeded images, flavors, networks don't count)."""
        return not (
            self.servers
            or self.ports
            or self.security_groups
            or self.rules
            or self.floating_ips
            or self.keypairs
        )

    # --------------------------------------------------------------- routing
    def _handle(self, request: Any, context: Any) -> str:
        url = urlsplit(request.url)
        service = url.hostname.split(".")[0]
        query = parse_qs(url.query, keep_blank_values=True)
        body = json.loads(request.body) if request.body else None
        self.calls.append(Call(request.method, service, url.path, query, body))
        context.headers["Content-Type"] = "application/json"
        handler = getattr(self, f"_{service}", None)
        try:
            if handler is None:
                raise FakeError(404, {"error": f"no such service {service}"})
            status, answer = handler(request.method, url.path.rstrip("/") or "/", query, body, context)
        except FakeError as err:
            status, answer = err.status, err.body
        if status in (404, 405) and answer.get("_unhandled"):
            self.unhandled.append(f"{request.method} {request.url}")
            answer = {"error": "unhandled by fake cloud"}
        context.status_code = status
        return "" if answer is None else json.dumps(answer)

    # -------------------------------------------------------------- keystone
    def _identity(self, method: str, path: str, query: Any, body: Any, context: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/":
            return 300, {
                "versions": {
                    "values": [
                        {
                            "id": "v3.14",
                            "status": "stable",
                            "updated": "2020-04-07T00:00:00Z",
                            "links": [{"href": f"{IDENTITY}/v3/", "rel": "self"}],
                            "media-types": [
                                {
                                    "base": "application/json",
                                    "type": "application/vnd.openstack.identity-v3+json",
                                }
                            ],
                        }
                    ]
                }
            }
        if method == "POST" and path == "/v3/auth/tokens":
            user = body["auth"]["identity"]["password"]["user"]
            if user.get("name") != self.username or user.get("password") != self.password:
                return 401, {
                    "error": {
                        "code": 401,
                        "title": "Unauthorized",
                        "message": "The request you have made requires authentication.",
                    }
                }
            self.tokens_issued += 1
            token = ks_fixture.V3Token(
                project_id=self.project_id, project_name="stargazer", user_name=self.username
            )
            for service_type, name, url in (
                ("identity", "keystone", f"{IDENTITY}/v3"),
                ("compute", "nova", COMPUTE),
                ("network", "neutron", NETWORK),
                ("image", "glance", IMAGE),
            ):
                token.add_service(service_type, name=name).add_standard_endpoints(public=url, region=REGION)
            context.headers["X-Subject-Token"] = uuid.uuid4().hex
            return 201, token
        return 404, {"_unhandled": True}

    # ------------------------------------------------------------------ nova
    def _compute(self, method: str, path: str, query: Any, body: Any, context: Any) -> tuple[int, Any]:
        version = {
            "id": "v2.1",
            "status": "CURRENT",
            "version": "2.96",
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"href": f"{COMPUTE}/", "rel": "self"}],
        }
        if method == "GET" and path in ("/", "/v2.1"):
            return 200, {"version": version} if path == "/v2.1" else {"versions": [version]}
        parts = path.removeprefix("/v2.1").strip("/").split("/")
        match (method, parts):
            case ("GET", ["flavors", "detail"]):
                return 200, {"flavors": list(self.flavors.values())}
            case ("GET", ["flavors", flavor_id]):
                if flavor_id not in self.flavors:
                    raise nova_error(404, "itemNotFound", f"Flavor {flavor_id} could not be found.")
                return 200, {"flavor": self.flavors[flavor_id]}
            case ("GET", ["os-keypairs"]):
                return 200, {"keypairs": [{"keypair": kp} for kp in self.keypairs.values()]}
            case ("GET", ["os-keypairs", name]):
                if name not in self.keypairs:
                    raise nova_error(404, "itemNotFound", f"Keypair {name} not found for user x")
                return 200, {"keypair": self.keypairs[name]}
            case ("POST", ["os-keypairs"]):
                return 200, {"keypair": self._create_keypair(body["keypair"])}
            case ("DELETE", ["os-keypairs", name]):
                if self.keypairs.pop(name, None) is None:
                    raise nova_error(404, "itemNotFound", f"Keypair {name} not found for user x")
                return 202, None
            case ("GET", ["servers"]) | ("GET", ["servers", "detail"]):
                servers = [s for s in list(self.servers.values()) if not self._gone(s)]
                if "name" in query:
                    servers = [s for s in servers if re.search(query["name"][0], s["name"])]
                return 200, {"servers": [self._server_view(s) for s in servers]}
            case ("GET", ["servers", server_id]):
                server = self._server(server_id)
                if self._gone(server):
                    raise nova_error(404, "itemNotFound", f"Instance {server_id} could not be found.")
                return 200, {"server": self._server_view(server)}
            case ("POST", ["servers"]):
                return 202, {"server": self._create_server(body["server"])}
            case ("DELETE", ["servers", server_id]):
                self._server(server_id).setdefault("deleting", 0)  # Nova deletes asynchronously
                return 204, None
            case ("POST", ["servers", server_id, "action"]) if "addSecurityGroup" in body:
                self._add_server_group(self._server(server_id), body["addSecurityGroup"]["name"])
                return 202, None
        return 404, {"_unhandled": True}

    def _create_keypair(self, spec: dict[str, Any]) -> dict[str, Any]:
        name = spec["name"]
        if name in self.keypairs:
            raise nova_error(409, "conflictingRequest", f"Key pair '{name}' already exists.")
        if not spec.get("public_key", "").startswith(("ssh-", "ecdsa-")):
            raise nova_error(400, "badRequest", "Keypair data is invalid: failed to generate fingerprint")
        keypair = {
            "name": name,
            "public_key": spec["public_key"],
            "type": spec.get("type", "ssh"),
            "fingerprint": "aa:bb:cc",
            "user_id": "u1",
            "id": len(self.keypairs) + 1,
            "created_at": "2026-01-01T00:00:00.000000",
            "deleted": False,
        }
        self.keypairs[name] = keypair
        return keypair

    def _server(self, server_id: str) -> dict[str, Any]:
        if server_id not in self.servers:
            raise nova_error(404, "itemNotFound", f"Instance {server_id} could not be found.")
        return self.servers[server_id]

    def _create_server(self, spec: dict[str, Any]) -> dict[str, Any]:
        if len(self.servers) + 1 > self.quota_instances:
            raise nova_error(
                self.quota_status,
                "forbidden" if self.quota_status == 403 else "overLimit",
                f"Quota exceeded for instances: Requested 1, but already used "
                f"{len(self.servers)} of {self.quota_instances} instances",
            )
        if spec["imageRef"] not in self.images:
            raise nova_error(400, "badRequest", f"Image {spec['imageRef']} could not be found.")
        if spec["flavorRef"] not in self.flavors:
            raise nova_error(400, "badRequest", f"Flavor {spec['flavorRef']} could not be found.")
        if spec.get("key_name") and spec["key_name"] not in self.keypairs:
            raise nova_error(400, "badRequest", "Invalid key_name provided.")
        group_ids = []
        for sg in spec.get("security_groups", []):
            found = [g["id"] for g in self.security_groups.values() if sg["name"] in (g["name"], g["id"])]
            if len(found) != 1:
                raise nova_error(400, "badRequest", f"Security group {sg['name']} not found for project x.")
            group_ids += found
        networks = spec.get("networks", [])
        if not networks or any(n.get("uuid") not in self.networks for n in networks):
            raise nova_error(400, "badRequest", "Network could not be found.")
        server_id = str(uuid.uuid4())
        for net in networks:
            port_id = str(uuid.uuid4())
            self.ports[port_id] = {
                "id": port_id,
                "name": "",
                "network_id": net["uuid"],
                "device_id": server_id,
                "device_owner": "compute:nova",
                "status": "ACTIVE",
                "admin_state_up": True,
                "mac_address": "fa:16:3e:00:00:%02x" % (len(self.ports) % 256),
                "fixed_ips": [
                    {
                        "subnet_id": self.networks[net["uuid"]]["subnets"][0],
                        "ip_address": next(self._fixed_ips),
                    }
                ],
                "security_groups": group_ids,
                "project_id": self.project_id,
                "tenant_id": self.project_id,
                "tags": [],
                "description": "",
            }
        self.servers[server_id] = {
            "id": server_id,
            "name": spec["name"],
            "status": "BUILD",
            "polls": 0,
            "image_id": spec["imageRef"],
            "flavor_id": spec["flavorRef"],
            "key_name": spec.get("key_name"),
            "metadata": dict(spec.get("metadata", {})),
            "group_names": [sg["name"] for sg in spec.get("security_groups", [])],
            "user_data": base64.b64decode(spec["user_data"]).decode() if spec.get("user_data") else None,
        }
        return {
            "id": server_id,
            "links": [],
            "OS-DCF:diskConfig": "MANUAL",
            "adminPass": "not-used",
            "security_groups": [{"name": n} for n in self.servers[server_id]["group_names"]],
        }

    def _add_server_group(self, server: dict[str, Any], name: str) -> None:
        """Nova's addSecurityGroup: every port of the server joins the group (a no-op when it is a member)."""
        found = [g for g in self.security_groups.values() if name in (g["name"], g["id"])]
        if len(found) != 1:
            raise nova_error(404, "itemNotFound", f"Security group {name} not found for project x.")
        if found[0]["name"] not in server["group_names"]:
            server["group_names"].append(found[0]["name"])
        for port in self._ports_of(server["id"]):
            if found[0]["id"] not in port["security_groups"]:
                port["security_groups"].append(found[0]["id"])

    def _advance(self, server: dict[str, Any]) -> None:
        """Each look at a building server moves it along, as time does in a real cloud."""
        if server["status"] != "BUILD":
            return
        if server["name"] in self.never_active:
            return
        server["polls"] += 1
        if server["polls"] <= self.build_polls:
            return
        if server["name"] in self.fail_on_build:
            server["status"] = "ERROR"
            server["fault"] = {
                "code": 500,
                "message": self.fail_on_build[server["name"]],
                "created": "2026-01-01T00:00:00Z",
            }
        else:
            server["status"] = "ACTIVE"

    def _server_view(self, server: dict[str, Any]) -> dict[str, Any]:
        self._advance(server)
        addresses: dict[str, list[dict[str, Any]]] = {}
        if server["status"] == "ACTIVE":
            for port in self._ports_of(server["id"]):
                net_name = self.networks[port["network_id"]]["name"]
                entries = addresses.setdefault(net_name, [])
                for fixed in port["fixed_ips"]:
                    entries.append(
                        {
                            "addr": fixed["ip_address"],
                            "version": 4,
                            "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                        }
                    )
                for fip in self.floating_ips.values():
                    if fip["port_id"] == port["id"]:
                        entries.append(
                            {
                                "addr": fip["floating_ip_address"],
                                "version": 4,
                                "OS-EXT-IPS:type": "floating",
                                "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                            }
                        )
        flavor = self.flavors[server["flavor_id"]]
        view = {
            "id": server["id"],
            "name": server["name"],
            "status": server["status"],
            "metadata": copy.deepcopy(server["metadata"]),
            "key_name": server["key_name"],
            "addresses": addresses,
            "image": {"id": server["image_id"], "links": []},
            "flavor": {
                "original_name": flavor["name"],
                "vcpus": flavor["vcpus"],
                "ram": flavor["ram"],
                "disk": flavor["disk"],
                "ephemeral": 0,
                "swap": 0,
                "extra_specs": {},
            },
            "security_groups": [{"name": n} for n in server["group_names"]],
            "tenant_id": self.project_id,
            "user_id": "u1",
            "links": [],
            "created": "2026-01-01T00:00:00Z",
            "updated": "2026-01-01T00:00:00Z",
            "OS-EXT-STS:vm_state": server["status"].lower(),
            "OS-EXT-STS:task_state": "deleting" if "deleting" in server else None,
            "OS-EXT-STS:power_state": 1,
            "progress": 0,
            "accessIPv4": "",
            "accessIPv6": "",
            "hostId": "",
            "config_drive": "",
            "tags": [],
            "OS-EXT-AZ:availability_zone": "nova",
            "os-extended-volumes:volumes_attached": [],
        }
        if "fault" in server:
            view["fault"] = server["fault"]
        return view

    def _gone(self, server: dict[str, Any]) -> bool:
        """A deleted server lingers for `delete_polls` looks, then it and its ports are really gone."""
        if "deleting" not in server:
            return False
        server["deleting"] += 1
        if server["deleting"] <= self.delete_polls:
            return False
        self._delete_server(server)
        return True

    def _ports_of(self, server_id: str) -> list[dict[str, Any]]:
        return [p for p in self.ports.values() if p["device_id"] == server_id]

    def _delete_server(self, server: dict[str, Any]) -> None:
        for port in self._ports_of(server["id"]):
            for fip in self.floating_ips.values():  # Neutron keeps the FIP, just unbinds it
                if fip["port_id"] == port["id"]:
                    fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
            del self.ports[port["id"]]
        del self.servers[server["id"]]

    # --------------------------------------------------------------- neutron
    def _network(self, method: str, path: str, query: Any, body: Any, context: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/":
            return 200, {
                "versions": [
                    {
                        "id": "v2.0",
                        "status": "CURRENT",
                        "links": [{"href": f"{NETWORK}/v2.0/", "rel": "self"}],
                    }
                ]
            }
        parts = path.removeprefix("/v2.0").strip("/").split("/")
        collections = {
            "networks": self.networks,
            "ports": self.ports,
            "security-groups": self.security_groups,
            "security-group-rules": self.rules,
            "floatingips": self.floating_ips,
        }
        keys = {
            "networks": "network",
            "ports": "port",
            "security-groups": "security_group",
            "security-group-rules": "security_group_rule",
            "floatingips": "floatingip",
        }
        if parts[0] not in collections:
            return 404, {"_unhandled": True}
        coll, key = collections[parts[0]], keys[parts[0]]
        match (method, parts):
            case ("GET", [name]):
                items = [self._neutron_view(name, i) for i in coll.values() if _matches(i, query)]
                return 200, {f"{key}s" if not key.endswith("s") else key: items}
            case ("GET", [name, item_id]):
                if item_id not in coll:
                    raise neutron_error(
                        404,
                        f"{key.title().replace('_', '')}NotFound",
                        f"{key.replace('_', ' ').title()} {item_id} could not be found.",
                    )
                return 200, {key: self._neutron_view(name, coll[item_id])}
            case ("POST", ["security-groups"]):
                return 201, {key: self._neutron_view("security-groups", self._create_group(body[key]))}
            case ("POST", ["security-group-rules"]):
                return 201, {key: self._create_rule(body[key])}
            case ("POST", ["floatingips"]):
                return 201, {key: self._create_fip(body[key])}
            case ("PUT", ["security-groups", group_id, "tags"]):
                self._neutron_get(coll, group_id, "SecurityGroup")["tags"] = list(body["tags"])
                return 200, {"tags": list(body["tags"])}
            case ("DELETE", ["security-groups", group_id]):
                self._delete_group(self._neutron_get(coll, group_id, "SecurityGroup"))
                return 204, None
            case ("DELETE", ["security-group-rules" | "floatingips", item_id]):
                self._neutron_get(coll, item_id, key)
                del coll[item_id]
                return 204, None
        return 404, {"_unhandled": True}

    def _neutron_get(self, coll: dict[str, Any], item_id: str, kind: str) -> dict[str, Any]:
        if item_id not in coll:
            raise neutron_error(404, f"{kind}NotFound", f"{kind} {item_id} could not be found.")
        return coll[item_id]

    def _neutron_view(self, collection: str, item: dict[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(item)
        if collection == "security-groups":
            view["security_group_rules"] = [
                r for r in self.rules.values() if r["security_group_id"] == item["id"]
            ]
        return view

    def _create_group(self, spec: dict[str, Any]) -> dict[str, Any]:
        group_id = str(uuid.uuid4())
        group = {
            "id": group_id,
            "name": spec["name"],
            "description": spec.get("description", ""),
            "project_id": self.project_id,
            "tenant_id": self.project_id,
            "tags": [],
            "stateful": True,
            "revision_number": 1,
            "shared": False,
        }
        self.security_groups[group_id] = group
        for ethertype in ("IPv4", "IPv6"):  # what real Neutron adds to every new group
            self._create_rule({"security_group_id": group_id, "direction": "egress", "ethertype": ethertype})
        return group

    def _delete_group(self, group: dict[str, Any]) -> None:
        if any(group["id"] in p["security_groups"] for p in self.ports.values()):
            raise neutron_error(409, "SecurityGroupInUse", f"Security Group {group['id']} in use.")
        for rule_id, rule in list(self.rules.items()):  # rules of, or pointing at, the group go with it
            if group["id"] in (rule["security_group_id"], rule["remote_group_id"]):
                del self.rules[rule_id]
        del self.security_groups[group["id"]]

    def _create_rule(self, spec: dict[str, Any]) -> dict[str, Any]:
        if spec["security_group_id"] not in self.security_groups:
            raise neutron_error(
                404, "SecurityGroupNotFound", f"Security group {spec['security_group_id']} does not exist"
            )
        if spec.get("remote_group_id") and spec["remote_group_id"] not in self.security_groups:
            raise neutron_error(
                404, "SecurityGroupNotFound", f"Security group {spec['remote_group_id']} does not exist"
            )
        rule = {
            "security_group_id": spec["security_group_id"],
            "direction": spec["direction"],
            "ethertype": spec.get("ethertype", "IPv4"),
            "protocol": spec.get("protocol"),
            "port_range_min": spec.get("port_range_min"),
            "port_range_max": spec.get("port_range_max"),
            "remote_ip_prefix": spec.get("remote_ip_prefix"),
            "remote_group_id": spec.get("remote_group_id"),
            "description": spec.get("description", ""),
        }
        for existing in self.rules.values():
            if all(existing[k] == v for k, v in rule.items() if k != "description"):
                raise neutron_error(
                    409,
                    "SecurityGroupRuleExists",
                    f"Security group rule already exists. Rule id is {existing['id']}.",
                )
        rule |= {
            "id": str(uuid.uuid4()),
            "project_id": self.project_id,
            "tenant_id": self.project_id,
            "revision_number": 0,
            "tags": [],
        }
        self.rules[rule["id"]] = rule
        return copy.deepcopy(rule)

    def _create_fip(self, spec: dict[str, Any]) -> dict[str, Any]:
        if len(self.floating_ips) + 1 > self.quota_floating_ips:
            raise neutron_error(409, "OverQuota", "Quota exceeded for resources: ['floatingip'].")
        network = self.networks.get(spec["floating_network_id"])
        if network is None or not network["router:external"]:
            raise neutron_error(404, "ExternalNetworkNotFound", "External network not found.")
        fixed = None
        if spec.get("port_id"):
            port = self._neutron_get(self.ports, spec["port_id"], "Port")
            fixed = port["fixed_ips"][0]["ip_address"]
        fip = {
            "id": str(uuid.uuid4()),
            "floating_ip_address": next(self._public_ips),
            "floating_network_id": network["id"],
            "port_id": spec.get("port_id"),
            "fixed_ip_address": fixed,
            "status": "ACTIVE" if fixed else "DOWN",
            "description": spec.get("description", ""),
            "router_id": None,
            "project_id": self.project_id,
            "tenant_id": self.project_id,
            "tags": [],
            "revision_number": 0,
        }
        self.floating_ips[fip["id"]] = fip
        return copy.deepcopy(fip)

    # ---------------------------------------------------------------- glance
    def _image(self, method: str, path: str, query: Any, body: Any, context: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/":
            return 300, {
                "versions": [
                    {"id": "v2.16", "status": "CURRENT", "links": [{"href": f"{IMAGE}/v2/", "rel": "self"}]}
                ]
            }
        parts = path.strip("/").split("/")
        match (method, parts):
            case ("GET", ["v2", "images"]):
                images = [i for i in self.images.values() if _matches(i, query)]
                return 200, {"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"}
            case ("GET", ["v2", "images", image_id]):
                if image_id not in self.images:
                    return 404, {
                        "code": 404,
                        "title": "Not Found",
                        "message": f"No image found with ID {image_id}",
                    }
                return 200, self.images[image_id]
        return 404, {"_unhandled": True}


def _matches(item: dict[str, Any], query: dict[str, list[str]]) -> bool:
    """Neutron/Glance list filters: equality on known fields; paging/field selectors are ignored."""
    for key, values in query.items():
        if key in ("fields", "limit", "marker", "sort_key", "sort_dir") or key not in item:
            continue
        value = item[key]
        text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        if text not in values:
            return False
    return True
