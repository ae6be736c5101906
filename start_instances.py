#!/usr/bin/env python3
"""Create (or grow, shrink, tear down) the stargazer fleet on an OpenStack cloud, then write the inventory.

    python start_instances.py [--fleet fleet.yml] [--cloud NAME] [--dry-run] [--delete] [--cleanup-failed]
                              [--timeout S] [--inventory inventory/hosts.yml]

Credentials come only from clouds.yaml, chosen by --cloud, OS_CLOUD or `cloud:` in the fleet file. Safe to
run again: it creates only what is missing. The work is in the `provisioning` package; see
docs/provisioning.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from provisioning.runner import RunOptions, run
from provisioning.settings import ProvisioningSettings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--fleet",
    "fleet_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default="fleet.yml",
    show_default=True,
    help="Declarative fleet description (YAML).",
)
@click.option(
    "--cloud", help="clouds.yaml entry [default: OS_CLOUD; else `cloud:` in the fleet]."
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing, write no inventory.")
@click.option(
    "--delete", is_flag=True, help="Tear the fleet down: floating IPs, servers, groups, own keypair."
)
@click.option("--cleanup-failed", is_flag=True, help="Delete (and replace) servers that are in ERROR.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the servers to become ACTIVE (all together) or to be deleted.",
)
@click.option(
    "--inventory",
    type=click.Path(path_type=Path, dir_okay=False),
    default="inventory/hosts.yml",
    show_default=True,
    help="Ansible inventory to write.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Seconds between status checks while waiting.",
)
def main(
    fleet_path: Path,
    cloud: str | None,
    dry_run: bool,
    delete: bool,
    cleanup_failed: bool,
    timeout: float,
    inventory: Path,
    poll_interval: float,
) -> None:
    """Make an OpenStack project match the --fleet description, then write the Ansible inventory."""
    options = RunOptions(
        fleet_path=fleet_path,
        cloud=cloud or ProvisioningSettings.from_env().cloud,
        dry_run=dry_run,
        delete=delete,
        cleanup_failed=cleanup_failed,
        timeout=timeout,
        inventory=inventory,
        poll_interval=poll_interval,
    )
    sys.exit(run(options, echo=click.echo, err=lambda line: click.echo(line, err=True)))


if __name__ == "__main__":
    main()
