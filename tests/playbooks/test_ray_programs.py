"""The Ray tiers' supervisor programs, rendered by Ansible from the inventory and parsed by supervisor itself.

Converging a real Ray head and worker through Ansible would cost a minute of the test budget (the development
part's own test runs a two-namespace Ray cluster with token auth). What can break here is the wiring: the
worker must join the address the development play recorded, every node must get RAY_AUTH_MODE=token and the
token file, and the program file must be valid supervisor syntax (quoting, `%` escapes). So: a two-host
inventory (local connection), the real group_vars and role defaults, the real templates, and supervisor's
own config parser (Debian's python3-supervisor) reading the result.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.playbooks.ansible_run import BIN, playbook
from tests.support import REPO_ROOT, require_executable

ROLES = REPO_ROOT / "playbooks" / "roles"
DEFAULTS = [ROLES / r / "defaults" / "main.yml" for r in ("stargazer", "ray_auth", "ray_head", "ray_worker")]

# The role defaults must keep their (lowest) precedence, so the inventory can override them: they go into
# a throwaway role's defaults/main.yml, not into vars_files (which would beat the inventory).
RENDER = """
- name: Render the Ray head program
  hosts: development
  gather_facts: false
  roles:
    - role: {role}
  tasks:
    - name: Record the head address as the ray_head role does
      ansible.builtin.set_fact:
        ray_head_address: "{{{{ ray_head_node_ip }}}}:{{{{ ray_head_port }}}}"
    - name: Write it
      ansible.builtin.copy:
        content: "{{{{ lookup('ansible.builtin.template', '{roles}/ray_head/templates/program.conf.j2') }}}}"
        dest: "{out}/head.conf"
        mode: "0600"

- name: Render the Ray worker program
  hosts: ray_workers
  gather_facts: false
  roles:
    - role: {role}
  tasks:
    - name: Write it
      ansible.builtin.copy:
        content: >-
          {{{{ lookup('ansible.builtin.template', '{roles}/ray_worker/templates/program.conf.j2') }}}}
        dest: "{out}/worker-{{{{ inventory_hostname }}}}.conf"
        mode: "0600"
"""

PARSE = """
import json, sys
from supervisor.options import ServerOptions
options = ServerOptions()
options.realize(args=["-c", sys.argv[1]])
print(json.dumps({p.name: {"command": p.command, "environment": p.environment, "user": p.uid is not None}
                  for g in options.process_group_configs for p in g.process_configs}))
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    require_executable("python3", "/usr/bin/python3")
    workdir = tmp_path_factory.mktemp("ray-programs")
    out = workdir / "out"
    out.mkdir()
    inv = workdir / "inventory"
    inv.mkdir()
    (inv / "group_vars").symlink_to(REPO_ROOT / "inventory" / "group_vars")
    local = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(BIN / "python"),
        # supervisor's parser resolves the user and checks that the log directory exists.
        "stargazer_user": "nobody",
        "stargazer_log_dir": str(workdir),
        "stargazer_home": str(workdir),
        "common_code_version": "0123abcd",
        "vault_ray_auth_token": "t" * 64,
    }
    inventory = {"all": {"children": {
        "development": {"hosts": {"dev": {**local, "ansible_host": "10.9.0.11"}}},
        "ray_workers": {"hosts": {"w1": {**local, "ansible_host": "10.9.0.21"},
                                  "w2": {**local, "ansible_host": "10.9.0.22", "ray_worker_num_cpus": 1}}},
    }}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(inventory))
    role = workdir / "ray_defaults"
    (role / "defaults").mkdir(parents=True)
    merged: dict = {}
    for path in DEFAULTS:
        merged.update(yaml.safe_load(path.read_text()))
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(merged))
    play = workdir / "render.yml"
    play.write_text(RENDER.format(role=role, roles=ROLES, out=out))
    result = playbook(workdir, "-i", str(inv / "hosts.yml"), str(play))
    assert result.returncode == 0, result.output[-4000:]
    return parse_programs(out, workdir)


def parse_programs(out: Path, workdir: Path) -> dict[str, dict]:
    """Every rendered ``<name>.conf`` under ``out`` as supervisor itself parses it: {name: program}."""
    programs: dict[str, dict] = {}
    for conf in sorted(out.glob("*.conf")):
        main = workdir / f"supervisord-{conf.stem}.conf"
        main.write_text(
            f"[supervisord]\nlogfile={workdir}/s.log\npidfile={workdir}/s.pid\n[include]\nfiles={conf}\n"
        )
        parsed = subprocess.run(
            ["/usr/bin/python3", "-c", PARSE, str(main)],
            capture_output=True, text=True, check=False, timeout=60,
        )
        assert parsed.returncode == 0, f"supervisor refuses {conf.name}: {parsed.stderr[-2000:]}"
        programs[conf.stem] = next(iter(json.loads(parsed.stdout).values()))
    return programs


def test_head_starts_with_token_auth_on_its_fleet_address(rendered: dict[str, dict]) -> None:
    head = rendered["head"]
    assert "ray.scripts.scripts start --head --block" in head["command"]
    assert "--node-ip-address 10.9.0.11 --port 6379" in head["command"]
    assert "--dashboard-host 127.0.0.1" in head["command"]
    assert head["environment"]["RAY_AUTH_MODE"] == "token"
    assert head["environment"]["RAY_AUTH_TOKEN_PATH"] == "/etc/stargazer/ray_auth_token"
    assert head["user"]  # never root


def test_every_worker_joins_the_recorded_head_with_the_same_token(rendered: dict[str, dict]) -> None:
    for name, ip in (("worker-w1", "10.9.0.21"), ("worker-w2", "10.9.0.22")):
        worker = rendered[name]
        assert "--block --address 10.9.0.11:6379" in worker["command"]
        assert f"--node-ip-address {ip}" in worker["command"]
        assert worker["environment"]["RAY_AUTH_MODE"] == "token"
        token_path = rendered["head"]["environment"]["RAY_AUTH_TOKEN_PATH"]
        assert worker["environment"]["RAY_AUTH_TOKEN_PATH"] == token_path
    assert "--num-cpus 1" in rendered["worker-w2"]["command"]
    assert "--num-cpus" not in rendered["worker-w1"]["command"]


def test_the_token_itself_is_not_in_the_program_files(rendered: dict[str, dict]) -> None:
    for program in rendered.values():
        assert "t" * 64 not in json.dumps(program)
