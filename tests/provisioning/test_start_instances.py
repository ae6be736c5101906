"""start_instances.py end to end against the stateful fake cloud, through the real openstacksdk.

Each test reads like an operator's session: create, run again, scale, break, tear down.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import openstack
import pytest
import yaml

from tests.provisioning.conftest import PUBLIC_CIDR, Env
from tests.support import REPO_ROOT

#: Ray, AMQP and gunicorn (8000: every production nginx balances across every production host's gunicorn).
INTERNAL_PORTS = [5672, 6379, 6380, 6381, 6382, 6383, 6384, 8000, 8265, 10001, 52365]


def _stderr_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip() and "waiting for ACTIVE" not in line]


def test_creates_the_fleet_then_a_second_run_creates_nothing(env: Env) -> None:
    first = env.run()
    assert first.exit_code == 0, first.output
    fake = env.fake
    assert fake.server_names() == [
        "sg-development-1",
        "sg-production-1",
        "sg-ray-worker-1",
        "sg-ray-worker-2",
    ]
    by_name = {s["name"]: s for s in fake.servers.values()}
    assert {n: s["status"] for n, s in by_name.items()} == dict.fromkeys(by_name, "ACTIVE")
    assert by_name["sg-ray-worker-2"]["metadata"] == {"fleet": "sg", "role": "ray_workers", "index": "2"}
    assert by_name["sg-production-1"]["key_name"] == "sg-key"
    # cloud-init user data per role, rendered for this host
    user_data = by_name["sg-production-1"]["user_data"]
    assert user_data.startswith("#cloud-config")
    assert "hostname: sg-production-1" in user_data and "STARGAZER_ROLE=production" in user_data
    assert "STARGAZER_ROLE=ray_workers" in by_name["sg-ray-worker-1"]["user_data"]
    assert fake.keypairs["sg-key"]["public_key"] == env.public_key
    # floating IPs exactly where asked
    with_fip = {fake.ports[f["port_id"]]["device_id"] for f in fake.floating_ips.values()}
    assert {fake.servers[i]["name"] for i in with_fip} == {"sg-development-1", "sg-production-1"}
    inventory_before = env.inventory.read_text()

    calls_before = len(fake.calls)
    second = env.run()
    assert second.exit_code == 0, second.output
    new_calls = fake.calls[calls_before:]
    assert [
        f"{c.method} {c.path}"
        for c in new_calls
        if c.method not in ("GET", "HEAD") and c.service != "identity"
    ] == []
    assert "nothing to change" in second.stdout and "= server sg-ray-worker-2 ACTIVE" in second.stdout
    assert "= keypair sg-key exists" in second.stdout
    assert env.inventory.read_text() == inventory_before


def test_security_groups_hold_exactly_the_least_rules(env: Env) -> None:
    assert env.run().exit_code == 0
    fake = env.fake
    internal = {("tcp", p, p, None, "sg-internal") for p in INTERNAL_PORTS} | {
        ("tcp", 10002, 10999, None, "sg-internal")
    }
    assert fake.ingress_rules("sg-internal") == internal
    assert fake.ingress_rules("sg-ssh") == {("tcp", 22, 22, PUBLIC_CIDR, None)}
    assert fake.ingress_rules("sg-admin") == {("tcp", 22, 22, PUBLIC_CIDR, None)}
    assert fake.ingress_rules("sg-web") == {
        ("tcp", port, port, cidr, None) for port in (80, 443) for cidr in ("0.0.0.0/0", "::/0")
    }
    # model delivery: SSH to production only from the development host's (rule-less) group
    assert fake.ingress_rules("sg-deploy") == {("tcp", 22, 22, None, "sg-deployer")}
    assert fake.ingress_rules("sg-deployer") == set()
    # membership: only production is in the public web group; nobody is in `default`
    groups = {s["name"]: sorted(s["group_names"]) for s in fake.servers.values()}
    assert groups == {
        "sg-development-1": ["sg-deployer", "sg-internal", "sg-ssh"],
        "sg-ray-worker-1": ["sg-internal", "sg-ssh"],
        "sg-ray-worker-2": ["sg-internal", "sg-ssh"],
        "sg-production-1": ["sg-deploy", "sg-internal", "sg-ssh", "sg-web"],
    }
    # Neutron's default egress rules are left alone
    egress = [r for r in fake.rules.values() if r["direction"] == "egress"]
    assert len(egress) == 2 * 6


def test_with_an_orchestration_host_ssh_is_open_only_from_its_group(env: Env) -> None:
    env.write_fleet(roles={"orchestration": {"count": 1, "flavor": "m1.small", "floating_ip": True}})
    assert env.run().exit_code == 0
    assert env.fake.ingress_rules("sg-ssh") == {("tcp", 22, 22, None, "sg-admin")}
    assert env.fake.ingress_rules("sg-admin") == {("tcp", 22, 22, PUBLIC_CIDR, None)}
    orch = next(s for s in env.fake.servers.values() if s["name"] == "sg-orchestration-1")
    assert orch["group_names"] == ["sg-admin"]
    hosts = env.inventory_data()["all"]["children"]
    orch_vars = hosts["orchestration"]["hosts"]["sg-orchestration-1"]
    assert orch_vars["ansible_host"] == orch_vars["floating_ip"]
    dev = hosts["development"]["hosts"]["sg-development-1"]
    assert (
        dev["floating_ip"] and dev["ansible_host"] == dev["private_ip"]
    )  # reached from inside, via its group


def test_rules_converge_when_ssh_cidr_changes(env: Env) -> None:
    assert env.run().exit_code == 0
    env.write_fleet(ssh_cidr="130.238.7.99/32")
    result = env.run()
    assert result.exit_code == 0, result.output
    assert env.fake.ingress_rules("sg-ssh") == {("tcp", 22, 22, "130.238.7.99/32", None)}
    assert env.fake.ingress_rules("sg-admin") == {("tcp", 22, 22, "130.238.7.99/32", None)}
    mutating = env.fake.mutating_calls()
    assert sum(m.startswith("DELETE network/v2.0/security-group-rules") for m in mutating) == 2
    assert not any(m.startswith(("POST compute", "DELETE compute")) for m in mutating[-6:])


def test_scale_up_then_down_deletes_the_highest_indexes(env: Env) -> None:
    assert env.run().exit_code == 0
    env.write_fleet(roles={"ray_workers": {"count": 4}, "production": {"count": 2}})
    up = env.run()
    assert up.exit_code == 0, up.output
    assert "+ server sg-ray-worker-3" in up.stdout and "+ server sg-ray-worker-4" in up.stdout
    assert env.fake.server_names() == [
        "sg-development-1",
        "sg-production-1",
        "sg-production-2",
        "sg-ray-worker-1",
        "sg-ray-worker-2",
        "sg-ray-worker-3",
        "sg-ray-worker-4",
    ]
    assert len(env.fake.floating_ips) == 3  # the new production host got one too

    env.write_fleet(roles={"ray_workers": {"count": 1}, "production": {"count": 1}})
    down = env.run()
    assert down.exit_code == 0, down.output
    assert env.fake.server_names() == ["sg-development-1", "sg-production-1", "sg-ray-worker-1"]
    deleted = [line.split()[2] for line in down.stdout.splitlines() if line.startswith("deleting server")]
    assert deleted == ["sg-ray-worker-4", "sg-ray-worker-3", "sg-ray-worker-2", "sg-production-2"]
    # the removed production host's floating IP was released, not leaked
    assert len(env.fake.floating_ips) == 2
    assert all(f["port_id"] for f in env.fake.floating_ips.values())
    hosts = env.inventory_data()["all"]["children"]
    assert list(hosts["ray_workers"]["hosts"]) == ["sg-ray-worker-1"]
    assert list(hosts["production"]["hosts"]) == ["sg-production-1"]


def test_an_error_server_is_reported_with_its_fault_and_cleanup_failed_replaces_it(env: Env) -> None:
    fault = "No valid host was found. There are not enough hosts available."
    env.fake.fail_on_build["sg-ray-worker-2"] = fault
    first = env.run()
    assert first.exit_code == 1
    assert f"server sg-ray-worker-2 went to ERROR: {fault}" in first.stdout
    error_server = next(s for s in env.fake.servers.values() if s["name"] == "sg-ray-worker-2")
    assert error_server["status"] == "ERROR"  # kept for inspection without --cleanup-failed
    assert "sg-ray-worker-2" not in env.inventory_data()["all"]["children"]["ray_workers"]["hosts"]

    again = env.run()  # still there, still reported, still a failure
    assert again.exit_code == 1
    assert f"! server sg-ray-worker-2 is ERROR: {fault}" in again.stdout

    env.fake.fail_on_build.clear()  # the cloud has capacity again
    fixed = env.run("--cleanup-failed")
    assert fixed.exit_code == 0, fixed.output
    assert "- server sg-ray-worker-2 (ERROR: No valid host" in fixed.stdout
    assert error_server["id"] not in env.fake.servers
    replacement = next(s for s in env.fake.servers.values() if s["name"] == "sg-ray-worker-2")
    assert replacement["status"] == "ACTIVE"


def test_scaling_down_past_an_error_server_removes_it_and_succeeds(env: Env) -> None:
    env.fake.fail_on_build["sg-ray-worker-2"] = "No valid host was found."
    assert env.run().exit_code == 1
    env.write_fleet(roles={"ray_workers": {"count": 1}})
    result = env.run()
    assert result.exit_code == 0, result.output
    assert "- server sg-ray-worker-2 (ray_workers scaled down to 1)" in result.stdout
    assert "sg-ray-worker-2" not in env.fake.server_names()


def test_cleanup_failed_deletes_a_server_that_fails_during_this_run(env: Env) -> None:
    env.fake.fail_on_build["sg-production-1"] = "Exceeded maximum number of retries."
    result = env.run("--cleanup-failed")
    assert result.exit_code == 1
    assert (
        "server sg-production-1 went to ERROR: Exceeded maximum number of retries. (deleted" in result.stdout
    )
    assert "sg-production-1" not in env.fake.server_names()
    assert len(env.fake.floating_ips) == 1  # no floating IP was made for the failed host


def test_a_server_still_building_at_the_timeout_fails_the_run(env: Env) -> None:
    env.fake.never_active.add("sg-development-1")
    started = time.monotonic()
    result = env.run("--timeout", "0.5")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert "server sg-development-1 is not ACTIVE after 0.5 s (status BUILD)" in result.stdout
    assert elapsed < 5
    # the others were still waited for and configured; the slow one is left to finish
    assert set(env.inventory_data()["all"]["children"]["ray_workers"]["hosts"]) == {
        "sg-ray-worker-1",
        "sg-ray-worker-2",
    }
    assert "sg-development-1" in env.fake.server_names()


@pytest.mark.parametrize("status", [403, 413])
def test_quota_exceeded_is_one_clear_line(env: Env, status: int) -> None:
    env.fake.quota_instances = 2
    env.fake.quota_status = status
    result = env.run()
    assert result.exit_code == 1
    lines = _stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "error: quota exceeded while creating server sg-ray-worker-2: Quota exceeded "
        "for instances: Requested 1, but already used 2 of 2 instances"
    )
    assert "Traceback" not in result.output


def test_floating_ip_quota_is_one_clear_line(env: Env) -> None:
    env.fake.quota_floating_ips = 1
    result = env.run()
    assert result.exit_code == 1
    lines = _stderr_lines(result)
    assert lines == [
        "error: quota exceeded while creating a floating IP: Quota exceeded for resources: ['floatingip']."
    ]


def test_wrong_credentials_are_one_line_and_never_echo_the_password(env: Env) -> None:
    result = env.run(cloud="wrongpw")
    assert result.exit_code == 1
    assert _stderr_lines(result) == [
        "error: authentication failed for cloud 'wrongpw' (HTTP 401): check the credentials in clouds.yaml"
    ]
    assert "not-the-password" not in result.output
    assert env.fake.servers == {} and not env.inventory.exists()


def test_an_unreachable_cloud_is_one_line(env: Env) -> None:
    started = time.monotonic()
    result = env.run(cloud="unreachable")
    assert result.exit_code == 1
    lines = _stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach cloud 'unreachable'"), lines
    assert time.monotonic() - started < 10


def test_secrets_never_appear_in_the_output(env: Env) -> None:
    outputs = [env.run().output, env.run("--dry-run").output, env.run("--delete").output]
    for output in outputs:
        assert env.fake.password not in output
        assert "X-Subject-Token" not in output


def test_unknown_cloud_image_and_missing_keypair_are_one_line(env: Env) -> None:
    result = env.run(cloud="nope")
    assert result.exit_code == 1 and _stderr_lines(result) == [
        "error: clouds.yaml: Cloud nope was not found."
    ]

    env.write_fleet(image="Debian 13")
    result = env.run()
    assert result.exit_code == 1
    assert _stderr_lines(result) == ["error: image 'Debian 13' not found on cloud 'fake'"]

    env.write_fleet(keypair={"name": "absent-key"})
    result = env.run()
    assert result.exit_code == 2
    assert _stderr_lines(result) == [
        "error: keypair 'absent-key' does not exist on the cloud and keypair.public_key_file is not set"
    ]
    assert env.fake.mutating_calls() == []


def test_dry_run_prints_the_plan_and_changes_nothing(env: Env) -> None:
    result = env.run("--dry-run")
    assert result.exit_code == 0
    assert "+ server sg-ray-worker-2 (ray_workers, m1.medium, Ubuntu 24.04)" in result.stdout
    assert "+ rule sg-web: ingress IPv6 tcp/443 from ::/0" in result.stdout
    assert "30 to create, 0 to change, 0 to delete" in result.stdout
    assert env.fake.mutating_calls() == [] and not env.inventory.exists()

    assert env.run().exit_code == 0
    env.write_fleet(roles={"ray_workers": {"count": 1}})
    before = len(env.fake.mutating_calls())
    shrink = env.run("--dry-run")
    assert "- server sg-ray-worker-2 (ray_workers scaled down to 1)" in shrink.stdout
    teardown = env.run("--dry-run", "--delete")
    assert "- security group sg-internal" in teardown.stdout
    assert len(env.fake.mutating_calls()) == before
    assert len(env.fake.servers) == 4


def test_delete_tears_the_fleet_down_and_leaves_the_cloud_empty(env: Env) -> None:
    assert env.run().exit_code == 0
    env.fake.floating_ips[next(iter(env.fake.floating_ips))]["port_id"] = None  # a detached one of ours
    result = env.run("--delete")
    assert result.exit_code == 0, result.output
    assert env.fake.is_empty(), (env.fake.server_names(), env.fake.security_groups, env.fake.floating_ips)
    assert "- keypair sg-key (imported by this fleet)" in result.stdout
    children = env.inventory_data()["all"]["children"]
    assert all(
        children[g]["hosts"] == {} for g in ("orchestration", "development", "ray_workers", "production")
    )
    again = env.run("--delete")
    assert again.exit_code == 0 and "nothing to change" in again.stdout


def test_delete_keeps_a_keypair_the_fleet_did_not_import(env: Env) -> None:
    env.fake.keypairs["team-key"] = {
        "name": "team-key",
        "public_key": env.public_key,
        "type": "ssh",
        "fingerprint": "x",
        "user_id": "u1",
        "id": 99,
    }
    env.write_fleet(keypair={"name": "team-key"})
    assert env.run().exit_code == 0
    result = env.run("--delete")
    assert result.exit_code == 0
    assert "= keypair team-key was not imported by this fleet: kept" in result.stdout
    assert list(env.fake.keypairs) == ["team-key"] and env.fake.servers == {}


def test_a_server_left_building_is_waited_for_on_the_next_run(env: Env) -> None:
    env.fake.never_active.add("sg-production-1")
    assert env.run("--timeout", "0.2").exit_code == 1
    assert len(env.fake.floating_ips) == 1  # only the development host's so far
    env.fake.never_active.clear()  # it finishes booting
    before = len(env.fake.mutating_calls())
    result = env.run()
    assert result.exit_code == 0, result.output
    assert "~ server sg-production-1 is BUILD: wait for ACTIVE, then a floating IP" in result.stdout
    assert env.fake.mutating_calls()[before:] == ["POST network/v2.0/floatingips"]  # no second server
    production = env.inventory_data()["all"]["children"]["production"]["hosts"]["sg-production-1"]
    assert production["floating_ip"] and production["ansible_host"] == production["floating_ip"]


def test_floating_ip_and_flavor_changes(env: Env) -> None:
    assert env.run().exit_code == 0
    env.write_fleet(roles={"production": {"floating_ip": False}, "ray_workers": {"flavor": "m1.small"}})
    result = env.run()
    assert result.exit_code == 0, result.output
    assert "- floating IP 172.24.4.101 (production no longer asks for a floating IP)" in result.stdout
    assert len(env.fake.floating_ips) == 1
    assert (
        "! server sg-ray-worker-1 has flavor m1.medium, the fleet file says m1.small: not resized"
        in result.stdout
    )
    assert (
        env.inventory_data()["all"]["children"]["production"]["hosts"]["sg-production-1"]["floating_ip"]
        is None
    )


def test_a_foreign_server_with_a_fleet_name_is_left_alone(env: Env) -> None:
    env.write_fleet(roles={"ray_workers": {"count": 1}})
    assert env.run().exit_code == 0
    impostor = next(s for s in env.fake.servers.values() if s["name"] == "sg-ray-worker-1")
    impostor["metadata"] = {}  # someone else's server now, as far as metadata says
    result = env.run()
    assert result.exit_code == 0
    assert "! server sg-ray-worker-1 has a fleet name but not the fleet's metadata" in result.stdout
    assert "+ server sg-ray-worker-2" in result.stdout  # index 1 is skipped, not reused
    assert impostor["id"] in env.fake.servers


def test_inventory_is_what_ansible_reads_and_the_dynamic_example_agrees(
    env: Env, ansible_inventory: Callable[..., dict[str, Any]]
) -> None:
    """The generated inventory as real `ansible-inventory` reads it; then inventory/openstack.yml's groups and
    compose, applied by Ansible to servers as openstacksdk returns them (the plugin itself needs the
    openstack.cloud collection, not installed here), must give the same groups and host variables."""
    env.write_fleet(name="stargazer")
    assert env.run().exit_code == 0
    parsed = ansible_inventory(env.inventory)
    assert set(parsed["all"]["children"]) >= {"orchestration", "development", "ray_workers", "production"}
    hostvars = parsed["_meta"]["hostvars"]
    ports = {p["device_id"]: p["fixed_ips"][0]["ip_address"] for p in env.fake.ports.values()}
    fips = {
        env.fake.ports[f["port_id"]]["device_id"]: f["floating_ip_address"]
        for f in env.fake.floating_ips.values()
    }
    for server in env.fake.servers.values():
        hv = hostvars[server["name"]]
        assert hv["private_ip"] == ports[server["id"]]
        assert hv["openstack_id"] == server["id"]
        assert hv["floating_ip"] == fips.get(server["id"])
        assert hv["ansible_host"] == (fips.get(server["id"]) or ports[server["id"]])
        assert hv["stargazer_fleet"] == "stargazer" and hv["ansible_user"] == "ubuntu"
        assert "--min-worker-port=10002 --max-worker-port=10999" in hv["ray_node_port_args"]
    assert parsed["ray_workers"]["hosts"] == ["stargazer-ray-worker-1", "stargazer-ray-worker-2"]
    assert parsed["development"]["hosts"] == ["stargazer-development-1"]

    # the dynamic alternative, inventory/openstack.yml
    conn = openstack.connect(cloud="fake")
    servers = [s.to_dict(computed=False) for s in conn.compute.servers(details=True)]
    hosts = {"all": {"hosts": {s["name"]: {"openstack": json.loads(json.dumps(s))} for s in servers}}}
    (env.tmp / "servers.yml").write_text(yaml.safe_dump(hosts))
    example = yaml.safe_load((REPO_ROOT / "inventory" / "openstack.yml").read_text())
    constructed = {
        "plugin": "ansible.builtin.constructed",
        "strict": True,
        "groups": example["groups"],
        "compose": example["compose"],
    }
    (env.tmp / "openstack.constructed.yml").write_text(yaml.safe_dump(constructed))
    dynamic = ansible_inventory(env.tmp / "servers.yml", env.tmp / "openstack.constructed.yml")
    for group in ("development", "ray_workers", "production"):
        assert sorted(dynamic[group]["hosts"]) == sorted(parsed[group]["hosts"])
    for name, hv in hostvars.items():
        dyn = dynamic["_meta"]["hostvars"][name]
        for key in ("private_ip", "floating_ip", "openstack_id", "fleet_index", "stargazer_fleet"):
            assert dyn[key] == hv[key], (name, key)
