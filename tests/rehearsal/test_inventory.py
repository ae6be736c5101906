"""The rehearsal's inventory: the shape start_instances.py writes, and one tree and account per host."""

from __future__ import annotations

from pathlib import Path

from rehearsal import hosts, inventory


def _build(tmp_path: Path) -> dict:
    return inventory.build(tmp_path, "sgzq", hosts.Network("sgzq", "10.210.77"), repos=300)


def test_every_tier_has_its_hosts_with_private_addresses(tmp_path: Path) -> None:
    children = _build(tmp_path)["all"]["children"]
    assert {g: len(c["hosts"]) for g, c in children.items()} == {
        "orchestration": 1, "development": 1, "ray_workers": 2, "production": 2, "github_simulator": 1,
    }
    for group in ("orchestration", "development", "ray_workers", "production"):
        for name, host in children[group]["hosts"].items():
            assert name.startswith("rehearsal-")
            assert host["private_ip"].startswith("10.210.77.") and host["ansible_host"] == host["private_ip"]
            assert host["floating_ip"] is None and "fleet_index" in host


def test_fleet_vars_carry_the_fixed_ray_ports(tmp_path: Path) -> None:
    fleet_vars = _build(tmp_path)["all"]["vars"]
    assert fleet_vars["ansible_user"] == "root"
    assert fleet_vars["ray_head_port"] == 6379
    assert "--node-manager-port=6380" in fleet_vars["ray_node_port_args"]


def test_hosts_share_no_tree_and_no_account(tmp_path: Path) -> None:
    children = _build(tmp_path)["all"]["children"]
    every = [h for g in ("orchestration", "development", "ray_workers", "production")
             for h in children[g]["hosts"].values()]
    for key in ("stargazer_user", "stargazer_home", "stargazer_app_dir", "stargazer_config_dir",
                "stargazer_log_dir", "stargazer_state_dir", "supervisor_socket"):
        values = [h[key] for h in every]
        assert len(set(values)) == len(every), key
    production = list(children["production"]["hosts"].values())
    assert len({h["githooks_repo_dir"] for h in production}) == 2
    assert len({h["rabbitmq_mnesia_base"] for h in production}) == 2
    ray = [*children["development"]["hosts"].values(), *children["ray_workers"]["hosts"].values()]
    temp_dirs = [h.get("ray_head_temp_dir") or h.get("ray_worker_temp_dir") for h in ray]
    assert len(set(temp_dirs)) == 3 and all(len(d) < 40 for d in temp_dirs)  # Ray's socket path limit


def test_the_simulator_is_on_the_orchestration_host_and_every_host_asks_it(tmp_path: Path) -> None:
    children = _build(tmp_path)["all"]["children"]
    (name, sim), = children["github_simulator"]["hosts"].items()
    assert name in children["orchestration"]["hosts"]
    url = f"http://{sim['github_simulator_host']}:{sim['github_simulator_port']}"
    assert sim["github_simulator_host"] == "10.210.77.10"
    for host in children["production"]["hosts"].values():
        assert host["stargazer_github_api_url"] == url
