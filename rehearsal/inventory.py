"""The rehearsal fleet's inventory and vault, laid out as an operator's are.

``hosts.yml`` is built by ``provisioning.inventory.build_inventory``, the function start_instances.py writes a
real cloud's inventory with (``ansible_host``, ``private_ip``, ``floating_ip``, the fleet's Ray ports), from
fleet.yml. Then each host gets the hostvars that give it its own trees under ``<root>/hosts/<key>/`` and its
own service account: the namespaces share one filesystem and one ``/etc/passwd``, which real VMs do not.
``group_vars`` are the repository's own files (linked, so what is rehearsed is what is configured), and the
vault is ``group_vars/all/vault.yml``, encrypted with ``.vault_pass`` next to the inventory, as the run book
has the operator do.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import yaml

from model_serving import artifact
from provisioning.cloud import ServerInfo
from provisioning.fleet import ROLE_SLUGS, load_fleet
from provisioning.inventory import build_inventory
from rehearsal import hosts
from rehearsal.settings import REPO_ROOT

SIMULATOR_PORT = 8765
#: The deploy repository, relative to the production account's home (the remotes name it so).
DEPLOY_REPO = "git/stargazer-deploy.git"
#: Tokens the GitHub simulator accepts; the collector and the production web processes send them.
GITHUB_TOKENS = "rehearsal-token-1,rehearsal-token-2,rehearsal-token-3"
VAULT_VARIABLES = (
    "vault_stargazer_broker_password",
    "vault_ray_auth_token",
    "vault_stargazer_secret_key",
)


def inventory_name(key: str) -> str:
    """The name start_instances.py would give this host (``<fleet>-<role slug>-<index>``)."""
    host = hosts.spec(key)
    return f"rehearsal-{ROLE_SLUGS[host.group]}-{host.index}"


def head_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def host_tree(root: Path, key: str) -> Path:
    return root / "hosts" / key


def handover_dir(root: Path) -> Path:
    """The development host's ``deploy_client_models_dir``: ``train --out`` and ``deploy --models``."""
    return host_tree(root, "dev") / "models-handover"


def host_vars(root: Path, prefix: str, key: str, simulator: str, commit: str) -> dict[str, Any]:
    """Every path the roles write, under this host's own tree; the rest is what a real host gets."""
    tree = host_tree(root, key)
    user = hosts.account(prefix, key)
    sup = tree / "supervisor"
    values: dict[str, Any] = {
        "ansible_become": False,  # the operator logs in as root here: this machine has no sudo
        "ansible_ssh_private_key_file": str(root / "ssh" / "id_ed25519"),
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
        "stargazer_install_packages": False,  # Debian packages are this machine's (make system-deps)
        "stargazer_user": user,
        "stargazer_group": user,
        "stargazer_home": str(tree / "home"),
        "stargazer_app_dir": str(tree / "app"),
        "stargazer_config_dir": str(tree / "etc"),
        "stargazer_model_dir": str(tree / "production"),
        "stargazer_log_dir": str(tree / "log"),
        "stargazer_run_dir": str(tree / "run"),
        "stargazer_state_dir": str(tree / "state"),
        "stargazer_deploy_public_key_file": str(tree / "etc-public" / "deploy_public_key"),
        "stargazer_github_api_url": simulator,
        "common_app_repo": f"file://{REPO_ROOT}",
        "common_app_version": commit,
        # Debian's python3 (readable by every service account) importing this checkout's venv packages:
        # the role's pip step then verifies requirements.txt offline instead of downloading 1 GB per host.
        "common_python": "/usr/bin/python3",
        "common_pip_extra_args": "--no-index",
        "common_venv_extra_site_dirs": [sysconfig.get_paths()["purelib"]],
        "supervisor_config_file": str(sup / "supervisord.conf"),
        "supervisor_conf_dir": str(sup / "conf.d"),
        "supervisor_socket": str(sup / "supervisor.sock"),
        "supervisor_pidfile": str(sup / "supervisord.pid"),
        "supervisor_log_dir": str(sup / "log"),
        "supervisor_enable_boot_service": False,
    }
    group = hosts.spec(key).group
    if group == "development":
        deployer = hosts.account(prefix, "deploy")
        values |= {
            "ray_head_temp_dir": str(hosts.ray_temp_dir(prefix, key)),
            "ray_head_num_cpus": 1,
            # The account that signs and pushes models, with its own home in this host's tree.
            "deploy_client_user": deployer,
            "deploy_client_group": deployer,
            "deploy_client_home": str(tree / "deploy"),
            "deploy_client_signing_key_file": str(tree / "deploy-key" / "deploy_signing_key"),
            # Where training hands versions to deploy (Ray's account writes, the deploy group reads).
            "deploy_client_models_dir": str(handover_dir(root)),
            # Relative: git resolves it in the pushed-to account's home, which is each production host's own.
            "deploy_client_remote_repo_dir": DEPLOY_REPO,
        }
    if group == "ray_workers":
        values |= {"ray_worker_temp_dir": str(hosts.ray_temp_dir(prefix, key)), "ray_worker_num_cpus": 1}
    if group == "production":
        values |= {
            "rabbitmq_disable_distro_service": False,
            "rabbitmq_nodename": f"rabbit-{user}@localhost",
            "rabbitmq_home": str(tree / "rabbitmq" / "home"),
            "rabbitmq_mnesia_base": str(tree / "rabbitmq" / "mnesia"),
            "rabbitmq_log_dir": str(tree / "rabbitmq" / "log"),
            "rabbitmq_conf_dir": str(tree / "rabbitmq" / "etc"),
            "nginx_disable_distro_service": False,
            "nginx_conf_dir": str(tree / "nginx" / "etc"),
            "nginx_run_dir": str(tree / "nginx" / "run"),
            "nginx_log_dir": str(tree / "nginx" / "log"),
            "nginx_temp_dir": str(tree / "nginx" / "tmp"),
            "celery_worker_concurrency": 1,
            # The account that unpickles the served model, apart from the service account.
            "celery_worker_user": hosts.account(prefix, f"{key}-w"),
            "celery_worker_group": hosts.account(prefix, f"{key}-w"),
            "celery_worker_home": str(tree / "worker-home"),
            "gunicorn_workers": 2,
            "githooks_repo_dir": str(tree / "home" / DEPLOY_REPO),
        }
    return values


def build(root: Path, prefix: str, network: hosts.Network, repos: int) -> dict[str, Any]:
    fleet = load_fleet(REPO_ROOT / "fleet.yml").model_copy(
        update={"name": "rehearsal", "ssh_user": "root", "ansible_address": "private"}
    )
    servers = [
        ServerInfo(
            id=f"netns:{hosts.namespace(prefix, h.key)}",
            name=inventory_name(h.key),
            role=h.group,
            index=h.index,
            status="ACTIVE",
            private_ip=network.address(h.key),
        )
        for h in hosts.FLEET
    ]
    inventory = build_inventory(fleet, servers)
    simulator = f"http://{network.address('orch')}:{SIMULATOR_PORT}"
    commit = head_commit()
    for h in hosts.FLEET:
        entry = inventory["all"]["children"][h.group]["hosts"][inventory_name(h.key)]
        entry.update(host_vars(root, prefix, h.key, simulator, commit))
    # The orchestration host also runs the GitHub stand-in (site.yml's github_simulator play), on the fleet
    # network: the development host collects from it, the production hosts look names up in it.
    inventory["all"]["children"]["github_simulator"] = {
        "hosts": {
            inventory_name("orch"): {
                "github_simulator_host": network.address("orch"),
                "github_simulator_port": SIMULATOR_PORT,
                "github_simulator_repos": repos,
            }
        }
    }
    return inventory


def link_group_vars(root: Path) -> None:
    """The repository's group_vars files, linked one by one (an operator's own vault.yml is left out)."""
    source = REPO_ROOT / "inventory" / "group_vars"
    for path in sorted(source.rglob("*.yml")):
        if path.name.startswith("vault"):
            continue
        target = root / "group_vars" / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_symlink():
            target.symlink_to(path)


def write_vault(root: Path) -> None:
    """Fresh secrets in group_vars/all/vault.yml, encrypted with .vault_pass (both stay in the rehearsal)."""
    password = root / ".vault_pass"
    vault = root / "group_vars" / "all" / "vault.yml"
    if vault.exists():
        return
    password.write_text(secrets.token_hex(32) + "\n")
    password.chmod(0o600)
    values = {name: secrets.token_hex(32) for name in VAULT_VARIABLES}
    signing_key, public_key = artifact.generate_key_pair()
    values["vault_stargazer_deploy_signing_key"] = signing_key
    values["vault_stargazer_deploy_public_key"] = public_key
    values["vault_stargazer_github_tokens"] = GITHUB_TOKENS
    vault.write_text(yaml.safe_dump(values))
    vault.chmod(0o600)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(password),
            str(vault),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def write(root: Path, prefix: str, network: hosts.Network, repos: int) -> Path:
    link_group_vars(root)
    write_vault(root)
    path = root / "hosts.yml"
    header = (
        "# GENERATED by `python -m rehearsal up` in the shape start_instances.py writes for a cloud,\n"
        "# plus the per-host trees and accounts of hosts that share one filesystem.\n"
        "# Removed by `make rehearsal-down`.\n"
    )
    path.write_text(header + yaml.safe_dump(build(root, prefix, network, repos), sort_keys=False, width=1000))
    return path
