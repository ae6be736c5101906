"""One run of start_instances.py: validate -> look -> plan -> (apply) -> inventory, with exit codes.

Exit codes: 0 the fleet is as described; 1 a cloud problem (auth, quota, a server in ERROR or still
building at the timeout); 2 bad input (fleet file, public key, user-data template, no cloud named).
Every error is one line on stderr; everything else is progress on stdout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from provisioning.apply import apply_plan
from provisioning.cloud import Cloud, CloudError
from provisioning.fleet import ROLES, FleetError, load_fleet, read_public_key
from provisioning.inventory import build_inventory, write_inventory
from provisioning.plan import build_plan, build_teardown
from provisioning.userdata import render_user_data

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    fleet_path: Path = Path("fleet.yml")
    cloud: str | None = None
    dry_run: bool = False
    delete: bool = False
    cleanup_failed: bool = False
    timeout: float = 600.0
    inventory: Path = Path("inventory/hosts.yml")
    poll_interval: float = 2.0


def run(opts: RunOptions, echo: Echo, err: Echo) -> int:
    try:
        return _run(opts, echo)
    except FleetError as e:
        err(f"error: {e}")
        return 2
    except CloudError as e:
        err(f"error: {e}")
        return 1


def _run(opts: RunOptions, echo: Echo) -> int:
    fleet = load_fleet(opts.fleet_path)
    roles_in_use = [r for r in ROLES if fleet.role(r).count > 0]
    public_key = None
    if not opts.delete:
        public_key = read_public_key(fleet.keypair)
        for role in roles_in_use:  # a broken template must stop the run before anything is booted
            render_user_data(
                role=role,
                fleet=fleet.name,
                hostname=f"{fleet.name}-check-1",
                index=1,
                template=fleet.role(role).user_data,
            )
    cloud_name = opts.cloud or fleet.cloud
    if not cloud_name:
        raise FleetError("no cloud named: pass --cloud NAME, set OS_CLOUD, or put `cloud:` in the fleet file")
    mode = " (dry run: nothing will be changed)" if opts.dry_run else ""
    echo(f"fleet {fleet.name} on cloud {cloud_name}{mode}")

    cloud = Cloud.connect(cloud_name, poll_interval=opts.poll_interval)
    obs = cloud.observe(fleet, roles_in_use, resolve_refs=not opts.delete)
    if opts.delete:
        plan = build_teardown(fleet, obs)
    else:
        plan = build_plan(fleet, obs, public_key=public_key, cleanup_failed=opts.cleanup_failed)
    for line in plan.render():
        echo(line)
    if opts.dry_run:
        echo(f"dry run: nothing changed, {opts.inventory} not written")
        return 0

    outcome = apply_plan(
        plan, cloud, obs, timeout=opts.timeout, cleanup_failed=opts.cleanup_failed, echo=echo
    )
    final = cloud.observe(fleet, [], resolve_refs=False)
    write_inventory(opts.inventory, build_inventory(fleet, final.servers))

    active = Counter(s.role for s in final.servers if s.status == "ACTIVE")
    per_role = ", ".join(f"{r} {active[r]}" for r in ROLES if active[r])
    echo(
        f"fleet {fleet.name}: {sum(active.values())} servers ACTIVE ({per_role or 'none'}); "
        f"created {len(outcome.created)}, deleted {len(outcome.deleted)}; inventory -> {opts.inventory}"
    )
    if not plan.changes:
        echo("nothing changed: everything in the fleet file already exists")
    problems = outcome.failed + [f"server {s.name} is ERROR: {s.fault}" for s in plan.failed]
    if problems:
        echo(f"{len(problems)} server(s) failed: " + "; ".join(problems))
        return 1
    return 0
