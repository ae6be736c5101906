"""The operator's pipeline on the converged fleet: collect, tune on Ray, deploy by git push, predict.

Every step runs on the development host over SSH as its service account, with the host's ``stargazer.env``
(GITHUB_API_URL pointing at the orchestration host's GitHub simulator, RAY_ADDRESS at the head, the deploy
secret's path), exactly the commands the README gives an operator. Predictions are asked from this machine,
a client outside the fleet, through each production host's nginx over HTTPS, verifying the certificate the
host generated.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal import hosts, remote
from rehearsal.inventory import GITHUB_TOKENS, handover_dir, host_tree

PY = "app/.venv/bin/python"  # relative to the host tree; commands run from the service account's home


@dataclass(frozen=True)
class Fleet:
    """What a pipeline step needs to reach the fleet."""

    root: Path
    prefix: str
    network: hosts.Network

    def tree(self, key: str) -> Path:
        return host_tree(self.root, key)

    def python(self, key: str) -> str:
        return str(self.tree(key) / PY)

    def on(
        self, key: str, command: str, log: Path, *, timeout: float = 900, check: bool = True,
        stdin: str | None = None,
    ):
        """``command`` on host ``key`` as its service account (settings loaded, in its home)."""
        wrapped = remote.as_service(self.root, self.prefix, key, command)
        return remote.run(
            self.root, self.network.address(key), wrapped, log=log, timeout=timeout, check=check, stdin=stdin
        )


def collect(fleet: Fleet, log: Path, repos: int) -> dict[str, Any]:
    """The operator puts the GitHub tokens in a 0600 file, then collects into ~/data/repos.csv."""
    py = fleet.python("dev")
    fleet.on("dev", "umask 077 && cat > github_tokens", log, stdin=GITHUB_TOKENS + "\n")
    fleet.on(
        "dev",
        f"GITHUB_TOKENS_FILE=$HOME/github_tokens {py} -m data_collection collect --min-stars 50 "
        f"--max-repos {repos} --out data/repos.csv --workers 4 --no-progress -q",
        log,
    )
    meta = json.loads((fleet.tree("dev") / "home" / "data" / "repos.csv.meta.json").read_text())
    return {"rows": meta["rows"], "api_calls": meta["api_calls"]}


_ACTIVE = re.compile(r"^Active:\s*\n((?:\s+\d+\s+node_\S+\n)+)", re.MULTILINE)


def ray_nodes(fleet: Fleet, log: Path) -> tuple[int, str]:
    """``ray status`` on the development host: the number of active nodes and the command's own table."""
    out = fleet.on("dev", f"{fleet.python('dev')} -m ray.scripts.scripts status", log).stdout
    match = _ACTIVE.search(out)
    return (len(match.group(1).strip().splitlines()) if match else 0), out


def train(fleet: Fleet, log: Path, trials: int) -> dict[str, Any]:
    """Screening and Ray Tune across the head and both workers (waits for 3 nodes), then the final fit.

    ``--no-reuse-actors``: with one CPU per node, every trial then takes a slot of its own, so the first three
    run one per node; a reused actor on the head may otherwise take every trial while the workers' actors
    are still starting."""
    out = fleet.on(
        "dev",
        f"{fleet.python('dev')} -m model_serving.development_server train --data data/repos.csv "
        f"--trials {trials} --folds 3 --min-nodes 3 --no-reuse-actors --seed 7 "
        f"--out {shlex.quote(str(handover_dir(fleet.root)))}",
        log,
        timeout=1200,
    ).stdout
    artifact = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("artifact: "))
    version_dir = Path(artifact.strip())
    if not version_dir.is_absolute():
        version_dir = fleet.tree("dev") / "home" / version_dir
    with (version_dir / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    nodes = sorted({row["node"] for row in rows if row["status"] == "ok" and row["node"]})
    return {
        "version": version_dir.name,
        "trials": len(rows),
        "trial_nodes": nodes,
        "failed_trials": sum(row["status"] != "ok" for row in rows),
    }


def deploy_command(fleet: Fleet, version: str) -> str:
    """The deploy as the operator runs it on the development host: as the deploy account with the settings
    Ansible wrote for it (signing key file, deploy repository, remotes), on the version training wrote into
    the handover directory (the deploy_client role's: Ray's account writes, the deploy account reads)."""
    home = fleet.tree("dev") / "deploy"
    inner = (
        f"set -a; . {shlex.quote(str(home / 'deploy.env'))}; set +a; cd {shlex.quote(str(home))} && "
        f"{fleet.python('dev')} -m model_serving.development_server deploy"
        f" --models {shlex.quote(str(handover_dir(fleet.root)))} {shlex.quote(version)}"
    )
    return f"runuser -u {hosts.account(fleet.prefix, 'deploy')} -- bash -c {shlex.quote(inner)}"


def deploy(fleet: Fleet, version: str, log: Path, *, timeout: float = 600):
    """``deploy`` ``version`` by git push over SSH to every production remote (two phases: validate
    everywhere, then switch everywhere)."""
    return remote.run(
        fleet.root, fleet.network.address("dev"), deploy_command(fleet, version), log=log, timeout=timeout
    )


def tls_context(fleet: Fleet, key: str) -> ssl.SSLContext:
    """Trust exactly the certificate this production host generated (its IP is in the certificate)."""
    return ssl.create_default_context(cafile=str(fleet.tree(key) / "nginx" / "etc" / "tls" / "stargazer.crt"))


def predict(fleet: Fleet, key: str, full_name: str, *, timeout: float = 60) -> dict[str, Any]:
    """POST /api/v1/predict through the host's nginx over HTTPS."""
    body = json.dumps({"repositories": [{"full_name": full_name}]}).encode()
    request = urllib.request.Request(
        f"https://{fleet.network.address(key)}/api/v1/predict",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        context = tls_context(fleet, key)
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310 - https
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{key}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
    item = answer["predictions"][0]
    if item.get("predicted_stars") is None:
        raise RuntimeError(f"{key}: no prediction for {full_name}: {item.get('error', item)}")
    return answer


def a_known_repository(fleet: Fleet) -> str:
    """The most-starred repository of the collected dataset (the simulator knows it)."""
    with (fleet.tree("dev") / "home" / "data" / "repos.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return max(rows, key=lambda r: int(r["stargazers_count"]))["full_name"]
