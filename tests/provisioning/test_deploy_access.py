"""SSH for model delivery (development -> production, docs/contracts.md §4) and how an existing fleet gets it.

The deploy command pushes over SSH to each production host's private address; the `ssh` group admits SSH
only from the orchestration host or `ssh_cidr`, so the fleet has a `deploy` group (production) that admits
port 22 from the rule-less `deployer` group (the development host). A fleet created before those groups
existed must converge too: its kept servers join the groups their role now has, nothing is recreated.
"""

from __future__ import annotations

from tests.provisioning.conftest import Env


def _forget_deploy_groups(env: Env) -> None:
    """Make the fake cloud look like a fleet made before the deploy groups (servers not in them)."""
    fake = env.fake
    for name in ("sg-deploy", "sg-deployer"):
        group = fake.group_by_name(name)
        for server in fake.servers.values():
            if name in server["group_names"]:
                server["group_names"].remove(name)
        for port in fake.ports.values():
            if group["id"] in port["security_groups"]:
                port["security_groups"].remove(group["id"])


def test_only_the_development_host_reaches_production_sshd(env: Env) -> None:
    assert env.run().exit_code == 0
    fake = env.fake
    assert fake.ingress_rules("sg-deploy") == {("tcp", 22, 22, None, "sg-deployer")}
    members = {
        group: sorted(s["name"] for s in fake.servers.values() if group in s["group_names"])
        for group in ("sg-deploy", "sg-deployer")
    }
    assert members == {"sg-deploy": ["sg-production-1"], "sg-deployer": ["sg-development-1"]}
    # with an orchestration host the same holds (SSH to everything else comes only from its group)
    env.write_fleet(roles={"orchestration": {"count": 1, "flavor": "m1.small", "floating_ip": True}})
    assert env.run().exit_code == 0
    assert fake.ingress_rules("sg-deploy") == {("tcp", 22, 22, None, "sg-deployer")}
    orch = next(s for s in fake.servers.values() if s["name"] == "sg-orchestration-1")
    assert orch["group_names"] == ["sg-admin"]


def test_servers_made_before_the_deploy_groups_join_them_and_nothing_is_recreated(env: Env) -> None:
    assert env.run().exit_code == 0
    _forget_deploy_groups(env)
    ids = {s["name"]: s["id"] for s in env.fake.servers.values()}

    dry = env.run("--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "~ server sg-production-1 joins security group(s) sg-deploy" in dry.stdout
    assert "~ server sg-development-1 joins security group(s) sg-deployer" in dry.stdout
    assert "2 to change" in dry.stdout and "ray-worker-1 joins" not in dry.stdout

    calls = len(env.fake.mutating_calls())
    result = env.run()
    assert result.exit_code == 0, result.output
    made = env.fake.mutating_calls()[calls:]
    assert sorted(made) == sorted(
        f"POST compute/v2.1/servers/{ids[name]}/action" for name in ("sg-production-1", "sg-development-1")
    )
    assert {s["name"]: s["id"] for s in env.fake.servers.values()} == ids
    groups = {s["name"]: sorted(s["group_names"]) for s in env.fake.servers.values()}
    assert groups["sg-production-1"] == ["sg-deploy", "sg-internal", "sg-ssh", "sg-web"]
    assert groups["sg-development-1"] == ["sg-deployer", "sg-internal", "sg-ssh"]
    again = env.run()
    assert "nothing to change" in again.stdout
