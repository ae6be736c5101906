"""Bad fleet files stop the run before any cloud call, with one line and exit code 2."""

from __future__ import annotations

import pytest

from tests.provisioning.conftest import Env


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"ssh_cidr": "0.0.0.0/0"}, "ssh_cidr 0.0.0.0/0 opens SSH to the world"),
        ({"ssh_cidr": "not-an-address"}, "ssh_cidr: not an address or CIDR: 'not-an-address'"),
        ({"roles": {"development": {"count": 2}}}, "development.count must be 0 or 1"),
        ({"roles": {"development": {"count": 0}}}, "ray_workers need a Ray head"),
        ({"roles": {"ray_workers": {"count": -1}}}, "roles.ray_workers.count: Input should be greater than"),
        ({"roles": {"production": {"flavor": None}}}, "flavor is required when count > 0"),
        ({"external_network": None}, "external_network is required when a role asks for floating_ip"),
        ({"name": "Bad_Name"}, "name: String should match pattern"),
        ({"ray": {"min_worker_port": 6380}}, "a fixed Ray port lies inside the worker port range"),
    ],
)
def test_invalid_fleet_is_one_line_and_exit_2(env: Env, changes: dict, message: str) -> None:
    env.write_fleet(**changes)
    result = env.run()
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert env.fake.calls == []  # refused before talking to the cloud


def test_a_private_key_is_never_imported(env: Env) -> None:
    (env.tmp / "id_test.pub").write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    result = env.run()
    assert result.exit_code == 2
    assert "holds a PRIVATE key: give the .pub file" in result.stderr
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in result.output
    assert env.fake.calls == []


def test_missing_public_key_file_and_broken_template(env: Env) -> None:
    env.write_fleet(keypair={"name": "sg-key", "public_key_file": "nope.pub"})
    result = env.run()
    assert result.exit_code == 2 and "keypair.public_key_file not found" in result.stderr

    (env.tmp / "worker.yaml").write_text("#cloud-config\nhostname: $hostnme\n")
    env.write_fleet(roles={"ray_workers": {"user_data": "worker.yaml"}})
    result = env.run()
    assert result.exit_code == 2
    assert "worker.yaml: unknown or malformed placeholder 'hostnme'" in result.stderr
    assert env.fake.calls == []


def test_custom_user_data_template_is_used(env: Env) -> None:
    (env.tmp / "worker.yaml").write_text(
        "#cloud-config\nhostname: $hostname\nruncmd: [[echo, $role-$index]]\n"
    )
    env.write_fleet(roles={"ray_workers": {"user_data": "worker.yaml"}})
    assert env.run().exit_code == 0
    worker = next(s for s in env.fake.servers.values() if s["name"] == "sg-ray-worker-2")
    assert (
        worker["user_data"] == "#cloud-config\nhostname: sg-ray-worker-2\nruncmd: [[echo, ray_workers-2]]\n"
    )


def test_no_cloud_named_anywhere(env: Env) -> None:
    from click.testing import CliRunner

    import start_instances

    result = CliRunner().invoke(
        start_instances.main, ["--fleet", str(env.fleet_path)], env={"OS_CLOUD": None}
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: no cloud named: pass --cloud NAME, set OS_CLOUD, or put `cloud:` in the fleet file"
    )


def test_os_cloud_selects_the_cloud(env: Env) -> None:
    from click.testing import CliRunner

    import start_instances

    result = CliRunner().invoke(
        start_instances.main, ["--fleet", str(env.fleet_path), "--dry-run"], env={"OS_CLOUD": "fake"}
    )
    assert result.exit_code == 0, result.output
    assert "fleet sg on cloud fake (dry run" in result.stdout
