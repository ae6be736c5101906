"""The loop closed: start_instances.py writes an inventory, and the real Ansible runs the playbooks on it.

The two halves meet only at inventory/hosts.yml. Here start_instances.py provisions a fleet on the fake cloud
(tests/provisioning/fake_cloud.py, through the real openstacksdk), writes its inventory next to the project's
real group_vars (as inventory/hosts.yml sits next to inventory/group_vars), and then:
- `ansible-inventory --list` sees the four groups and the writer's variables, not shadowed by group_vars;
- `ansible-playbook --syntax-check site.yml` accepts it;
- the Ray head and worker supervisor programs and the deploy remotes, rendered by Ansible from it (real role
  defaults and templates, parsed by supervisor's own config parser), bind and join PRIVATE addresses (the
  floating IPs are not on the VMs' interfaces) with the fleet's fixed ports;
- the security groups the fake cloud now holds open between fleet members exactly the ports those command
  lines use (plus AMQP), and every Ray node is a member of the group that opens them.
No service starts and nothing is reached over SSH (ansible_connection=local): no lock needed.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests_mock
import yaml
from click.testing import CliRunner

import start_instances
from tests.playbooks.ansible_run import BIN, PLAYBOOKS, ansible_env, playbook
from tests.playbooks.test_ray_programs import DEFAULTS, RENDER, parse_programs
from tests.provisioning.fake_cloud import FakeCloud
from tests.support import REPO_ROOT, require_executable

ROLES = PLAYBOOKS / "roles"
GROUPS = ("orchestration", "development", "ray_workers", "production")
TOKEN = "t" * 64
FLEET = {
    "name": "sg",
    "image": "Ubuntu 24.04",
    "network": "stargazer-net",
    "external_network": "public",
    "keypair": {"name": "sg-key", "public_key_file": "id_test.pub"},
    # A global address: Ansible reaches the floating IPs from outside, so ansible_host != private_ip for
    # the development and production hosts -- the case where using the wrong variable shows.
    "ssh_cidr": "130.238.7.10/32",
    "ssh_user": "ubuntu",
    "roles": {
        "development": {"count": 1, "flavor": "m1.large", "floating_ip": True},
        "ray_workers": {"count": 2, "flavor": "m1.medium"},
        "production": {"count": 1, "flavor": "m1.medium", "floating_ip": True},
    },
}
# What the render runs need on this machine; none of it is an address or a port.
LOCAL = {
    "ansible_connection": "local",
    "ansible_python_interpreter": str(BIN / "python"),
    "stargazer_user": "nobody",
    "common_code_version": "0123abcd",
    "vault_ray_auth_token": TOKEN,
}
DEPLOY_REMOTES = """
- name: Render the deploy remotes of the development host
  hosts: development
  gather_facts: false
  roles:
    - role: {role}
  tasks:
    - name: Write them
      ansible.builtin.copy:
        content: >-
          {{{{ lookup('ansible.builtin.template', '{roles}/deploy_client/templates/deploy_remotes.j2') }}}}
        dest: "{out}/deploy_remotes"
        mode: "0600"
"""


@dataclass
class Provisioned:
    workdir: Path
    inventory: Path
    fake: FakeCloud
    extra_vars: Path

    def servers(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.fake.servers.values()}

    def private_ip(self, name: str) -> str:
        server_id = self.servers()[name]["id"]
        return next(
            p["fixed_ips"][0]["ip_address"] for p in self.fake.ports.values() if p["device_id"] == server_id
        )


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    workdir = tmp_path_factory.mktemp("provisioned")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsC1oPmVb4Qx0QHhGQ0qMLdnEHxfG1bq3bF0g6nD0Q1 test@stargazer"
    (workdir / "id_test.pub").write_text(key + "\n")
    (workdir / "fleet.yml").write_text(yaml.safe_dump(FLEET))
    fake = FakeCloud()
    (workdir / "clouds.yaml").write_text(fake.clouds_yaml("fake"))
    inventory_dir = workdir / "inventory"
    inventory_dir.mkdir()
    # The project's real group_vars beside the written file: their precedence is part of what is tested.
    (inventory_dir / "group_vars").symlink_to(REPO_ROOT / "inventory" / "group_vars")
    inventory = inventory_dir / "hosts.yml"
    with pytest.MonkeyPatch.context() as mp, requests_mock.Mocker() as mocker:
        mp.setenv("OS_CLIENT_CONFIG_FILE", str(workdir / "clouds.yaml"))
        mp.setenv("OS_CLIENT_SECURE_FILE", str(workdir / "no-secure.yaml"))
        mp.delenv("OS_CLOUD", raising=False)
        fake.install(mocker)
        result = CliRunner().invoke(
            start_instances.main,
            [
                "--fleet",
                str(workdir / "fleet.yml"),
                "--cloud",
                "fake",
                "--inventory",
                str(inventory),
                "--poll-interval",
                "0.001",
                "--timeout",
                "5",
            ],
        )
    assert result.exit_code == 0, result.output
    assert fake.unhandled == []
    extra = workdir / "local.json"
    extra.write_text(
        json.dumps(
            {
                **LOCAL,
                "stargazer_log_dir": str(workdir),
                "stargazer_home": str(workdir),
                "stargazer_config_dir": str(workdir),
            }
        )
    )
    yield Provisioned(workdir, inventory, fake, extra)


@pytest.fixture(scope="module")
def listed(provisioned: Provisioned) -> dict[str, Any]:
    exe = require_executable("ansible-inventory", str(BIN / "ansible-inventory"))
    out = subprocess.run(
        [exe, "-i", str(provisioned.inventory), "--list"],
        cwd=PLAYBOOKS,
        env=ansible_env(provisioned.workdir),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def rendered(provisioned: Provisioned) -> dict[str, Any]:
    """The Ray programs (parsed by supervisor) and the deploy remotes, rendered from the written inventory."""
    require_executable("python3", "/usr/bin/python3")
    workdir = provisioned.workdir
    out = workdir / "out"
    out.mkdir()
    role = workdir / "render_defaults"
    (role / "defaults").mkdir(parents=True)
    merged: dict = {}
    for path in [*DEFAULTS, ROLES / "deploy_client" / "defaults" / "main.yml"]:
        merged.update(yaml.safe_load(path.read_text()))
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(merged))
    play = workdir / "render.yml"
    play.write_text(
        RENDER.format(role=role, roles=ROLES, out=out)
        + DEPLOY_REMOTES.format(role=role, roles=ROLES, out=out)
    )
    result = playbook(
        workdir, "-i", str(provisioned.inventory), "-e", f"@{provisioned.extra_vars}", str(play)
    )
    assert result.returncode == 0, result.output[-4000:]
    programs: dict[str, Any] = {
        name: program["command"] for name, program in parse_programs(out, workdir).items()
    }
    programs["deploy_remotes"] = (out / "deploy_remotes").read_text()
    return programs


def _flags(command: str) -> dict[str, str]:
    """`--name value` and `--name=value` pairs of a command line."""
    return dict(re.findall(r"--([a-z-]+)[= ]([^\s-][^\s]*)", command))


def _ports(command: str) -> set[int]:
    """Every port (and worker port range, as its ends) a `ray start` command line fixes."""
    flags = _flags(command)
    ports = {int(v) for k, v in flags.items() if k == "port" or k.endswith("-port")}
    ports -= {int(flags[k]) for k in ("min-worker-port", "max-worker-port") if k in flags}
    return ports


def test_ansible_inventory_lists_the_four_groups_with_the_writers_variables(
    provisioned: Provisioned, listed: dict[str, Any]
) -> None:
    assert set(listed["all"]["children"]) >= set(GROUPS)
    assert listed["development"]["hosts"] == ["sg-development-1"]
    assert listed["ray_workers"]["hosts"] == ["sg-ray-worker-1", "sg-ray-worker-2"]
    assert listed["production"]["hosts"] == ["sg-production-1"]
    assert "hosts" not in listed.get("orchestration", {})  # present, empty
    for name, hv in listed["_meta"]["hostvars"].items():
        assert hv["private_ip"] == provisioned.private_ip(name)
        # the writer's all:vars survive the repo's group_vars (group_vars/all would beat them)
        assert hv["ansible_user"] == "ubuntu", name
        assert hv["ray_head_port"] == 6379 and hv["ray_node_port_args"]
    dev = listed["_meta"]["hostvars"]["sg-development-1"]
    assert dev["ansible_host"] == dev["floating_ip"] != dev["private_ip"]


def test_site_syntax_check_accepts_the_written_inventory(provisioned: Provisioned) -> None:
    result = playbook(provisioned.workdir, "--syntax-check", "-i", str(provisioned.inventory), "site.yml")
    assert result.returncode == 0, result.output[-4000:]


def test_ray_nodes_bind_and_join_private_addresses(
    provisioned: Provisioned, rendered: dict[str, Any]
) -> None:
    dev_ip = provisioned.private_ip("sg-development-1")
    head = _flags(rendered["head"])
    assert "--head" in rendered["head"]
    assert head["node-ip-address"] == dev_ip
    for worker in ("sg-ray-worker-1", "sg-ray-worker-2"):
        flags = _flags(rendered[f"worker-{worker}"])
        assert flags["address"] == f"{dev_ip}:6379"
        assert flags["node-ip-address"] == provisioned.private_ip(worker)
    floating = {f["floating_ip_address"] for f in provisioned.fake.floating_ips.values()}
    assert floating and not any(ip in " ".join(rendered.values()) for ip in floating)


def test_deploy_remotes_use_the_production_private_address(
    provisioned: Provisioned, rendered: dict[str, Any]
) -> None:
    remotes = [line for line in rendered["deploy_remotes"].splitlines() if line and not line.startswith("#")]
    assert remotes == [f"nobody@{provisioned.private_ip('sg-production-1')}:/srv/git/stargazer-deploy.git"]
    # ... and the security groups let that push through: the production host admits SSH from the group the
    # development host (and only it) is in
    servers = provisioned.servers()
    assert provisioned.fake.ingress_rules("sg-deploy") == {("tcp", 22, 22, None, "sg-deployer")}
    assert "sg-deploy" in servers["sg-production-1"]["group_names"]
    assert [n for n, s in servers.items() if "sg-deployer" in s["group_names"]] == ["sg-development-1"]


def test_every_ray_port_is_fixed_and_each_flag_appears_once(rendered: dict[str, Any]) -> None:
    node_flags = {
        "node-manager-port",
        "object-manager-port",
        "metrics-export-port",
        "dashboard-agent-grpc-port",
        "dashboard-agent-listen-port",
        "runtime-env-agent-port",
        "min-worker-port",
        "max-worker-port",
    }
    for name in ("head", "worker-sg-ray-worker-1", "worker-sg-ray-worker-2"):
        command = rendered[name]
        assert node_flags <= set(_flags(command)), name
        names = re.findall(r"--([a-z-]+)", command)
        assert len(names) == len(set(names)), f"{name} repeats a flag: {command}"
    assert {"port", "dashboard-port", "ray-client-server-port"} <= set(_flags(rendered["head"]))


def test_security_groups_open_exactly_those_ports_between_fleet_members(
    provisioned: Provisioned, rendered: dict[str, Any]
) -> None:
    fake = provisioned.fake
    commands = [rendered["head"], rendered["worker-sg-ray-worker-1"], rendered["worker-sg-ray-worker-2"]]
    used = set().union(*(_ports(c) for c in commands))
    ranges = {(int(_flags(c)["min-worker-port"]), int(_flags(c)["max-worker-port"])) for c in commands}
    amqp_and_gunicorn = {5672, 8000}  # rabbitmq_ports and gunicorn_port of the fleet

    between_members: dict[str, set[tuple[Any, ...]]] = {}
    for group in fake.security_groups.values():
        rules = {r for r in fake.ingress_rules(group["name"]) if r[4] is not None}  # from a remote group
        if rules:
            between_members[group["name"]] = rules
    # SSH from the development host to production (git push of models, docs/contracts.md §4) is the only
    # other one
    assert between_members.pop("sg-deploy") == {("tcp", 22, 22, None, "sg-deployer")}
    assert set(between_members) == {"sg-internal"}, between_members
    internal = between_members["sg-internal"]
    assert all(r[0] == "tcp" and r[4] == "sg-internal" for r in internal)
    singles = {r[1] for r in internal if r[1] == r[2]}
    spans = {(r[1], r[2]) for r in internal if r[1] != r[2]}
    assert singles == used | amqp_and_gunicorn
    assert spans == ranges
    # and the Ray nodes are the members of that group, so the rules apply between them
    servers = provisioned.servers()
    for name in ("sg-development-1", "sg-ray-worker-1", "sg-ray-worker-2"):
        assert "sg-internal" in servers[name]["group_names"], name


def test_the_token_is_not_in_the_program_files(rendered: dict[str, Any]) -> None:
    assert TOKEN not in json.dumps(rendered)


def test_the_committed_example_has_the_written_shape(provisioned: Provisioned) -> None:
    """inventory/hosts.example.yml (syntax-checked by test_static) must not drift from the writer."""
    written = yaml.safe_load(provisioned.inventory.read_text())["all"]
    example = yaml.safe_load((REPO_ROOT / "inventory" / "hosts.example.yml").read_text())["all"]
    assert list(example["vars"]) == list(written["vars"])
    assert list(example["children"]) == list(written["children"]) == list(GROUPS)
    for tree in (written, example):
        for group in tree["children"].values():
            for host_vars in group["hosts"].values():
                assert list(host_vars) == [
                    "ansible_host", "private_ip", "floating_ip", "openstack_id", "fleet_index",
                ]  # fmt: skip
