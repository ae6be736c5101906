"""``python -m rehearsal {up,preview,converge,pipeline,drills,status,down,all}``: the rehearsal, by stage.

``all`` is what ``make rehearsal`` runs: every stage in order, then ``down`` unless ``REHEARSAL_KEEP=1``.
Each stage prints one line; the tools' output goes to ``<root>/log/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import click

from rehearsal import ansible, drills, hosts, inventory, pipeline, record, remote
from rehearsal.settings import Settings


def _fleet_state(settings: Settings) -> hosts.Network:
    path = settings.root / "state.json"
    if not path.exists() or not hosts.existing_namespaces(settings.prefix):
        raise click.ClickException(f"no rehearsal fleet is up ({path} missing): run `python -m rehearsal up`")
    state = json.loads(path.read_text())
    return hosts.Network(state["prefix"], state["subnet"])


def do_up(settings: Settings) -> hosts.Network:
    root = settings.root
    with record.stage(root, "up", "six namespace hosts with their own address and sshd") as summary:
        if hosts.existing_namespaces(settings.prefix):
            raise record.StageFailed(
                f"a rehearsal fleet with prefix {settings.prefix} is already up: `make rehearsal-down` first"
            )
        if os.geteuid() != 0:
            raise record.StageFailed("the rehearsal needs root (network namespaces, sshd, service accounts)")
        subnet = hosts.free_subnet() if settings.subnet == "auto" else settings.subnet
        network = hosts.Network(settings.prefix, subnet)
        for sub in ("hosts", "log", "ssh/authorized"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for path in (root, root / "hosts"):
            path.chmod(0o755)
        (root / "ssh").chmod(0o700)
        key = root / "ssh" / "id_ed25519"
        if not key.exists():
            hosts.run(
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rehearsal-operator", "-f", str(key)
            )
        (root / "ssh" / "authorized" / "root").write_text(key.with_suffix(".pub").read_text())
        (root / "state.json").write_text(json.dumps({"prefix": settings.prefix, "subnet": subnet}) + "\n")
        network.create([h.key for h in hosts.FLEET])
        for h in hosts.FLEET:
            (root / "hosts" / h.key).mkdir(exist_ok=True)
            (root / "hosts" / h.key).chmod(0o755)
            hosts.SshHost(settings.prefix, h.key, network.address(h.key), root).start(
                root / "ssh" / "authorized"
            )
        path = inventory.write(root, settings.prefix, network, settings.repos)
        summary["text"] = f"{subnet}.0/24, inventory {path}"
    return network


def _recap_of_every_host(run: ansible.Run, names: list[str]) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of a run that succeeded on every host; else the stage fails, in one line."""
    if run.returncode != 0:
        raise record.StageFailed(run.failure())
    recap = run.recap()
    missing = [n for n in names if n not in recap]
    if missing:
        raise record.StageFailed(f"hosts missing from the PLAY RECAP: {', '.join(missing)}")
    return recap


#: What a first converge makes in a host's own tree; a preview must leave none of it behind.
_CONVERGE_MADE = ("app", "etc", "home", "log", "run", "state", "supervisor")


def do_preview(settings: Settings) -> None:
    """``site.yml --check --diff`` on the fresh fleet: what an operator reads before the first converge."""
    root = settings.root
    inventory.write(root, settings.prefix, _fleet_state(settings), settings.repos)
    names = [inventory.inventory_name(h.key) for h in hosts.FLEET]
    what = "site.yml --check --diff on the fresh hosts changes nothing"
    with record.stage(root, "preview", what) as summary:
        run = ansible.playbook(root, record.log_path(root, "preview"), "site.yml", "--check", "--diff")
        recap = _recap_of_every_host(run, names)
        made = [
            f"{h.key}/{part}"
            for h in hosts.FLEET
            for part in _CONVERGE_MADE
            if (inventory.host_tree(root, h.key) / part).exists()
        ]
        record.note(
            root,
            "preview",
            {
                "would_change": {n: recap[n]["changed"] for n in names},
                "made": made,
                "accounts": hosts.accounts(settings.prefix),
                "diff_shows": [
                    marker for marker in ("ssl_certificate", "STARGAZER_APP_DIR=") if marker in run.output
                ],
            },
        )
        if made:
            raise record.StageFailed(f"--check made {', '.join(made)}")
        summary["text"] = "would change " + " ".join(
            f"{n.removeprefix('rehearsal-')}={recap[n]['changed']}" for n in names
        )


def do_converge(settings: Settings) -> None:
    root = settings.root
    # The hosts check out this checkout's HEAD: rewrite the inventory with it (same network, same hosts).
    inventory.write(root, settings.prefix, _fleet_state(settings), settings.repos)
    names = [inventory.inventory_name(h.key) for h in hosts.FLEET]
    counts: dict[str, dict[str, int]] = {}
    for attempt, what in (
        (1, "site.yml converges every tier over SSH"),
        (2, "site.yml again: nothing changes"),
    ):
        name = f"converge-{attempt}"
        with record.stage(root, name, what) as summary:
            run = ansible.playbook(root, record.log_path(root, name), "site.yml")
            recap = _recap_of_every_host(run, names)
            changed = {n: recap[n]["changed"] for n in names}
            counts[name] = changed
            record.note(root, f"{name}_changed", changed)
            if attempt == 1:
                hosts.unlock_for_keys(settings.prefix)
            if attempt == 2 and any(changed.values()):
                busy = ", ".join(f"{n}={c}" for n, c in changed.items() if c)
                raise record.StageFailed(f"the second converge changed something: {busy}")
            summary["text"] = "changed " + " ".join(
                f"{n.removeprefix('rehearsal-')}={c}" for n, c in changed.items()
            )


def _fleet(settings: Settings) -> pipeline.Fleet:
    return pipeline.Fleet(settings.root, settings.prefix, _fleet_state(settings))


def do_pipeline(settings: Settings) -> None:
    root, fleet = settings.root, _fleet(settings)
    with record.stage(root, "collect", "development host collects from the GitHub simulator") as summary:
        collected = pipeline.collect(fleet, record.log_path(root, "collect"), settings.repos)
        record.note(root, "collect", collected)
        summary["text"] = f"{collected['rows']} repositories, {collected['api_calls']} API calls"
    with record.stage(root, "ray-status", "`ray status` on the development host") as summary:
        nodes, table = pipeline.ray_nodes(fleet, record.log_path(root, "ray-status"))
        record.note(root, "ray_status", {"active_nodes": nodes, "output": table})
        if nodes != 3:
            raise record.StageFailed(f"ray status lists {nodes} active nodes, not 3 (head + 2 workers)")
        summary["text"] = f"{nodes} nodes active"
    with record.stage(root, "train", "screening and Ray Tune across head + 2 workers, final fit") as summary:
        trained = pipeline.train(fleet, record.log_path(root, "train"), settings.trials)
        record.note(root, "train", trained)
        if len(trained["trial_nodes"]) != 3:
            raise record.StageFailed(f"trials ran on {trained['trial_nodes']}, not on all 3 nodes")
        summary["text"] = (
            f"{trained['version']}, {trained['trials']} trials on {', '.join(trained['trial_nodes'])}"
        )
    with record.stage(root, "deploy", "git push over SSH in two phases to both production hosts") as summary:
        version = record.results(root)["train"]["version"]
        out = pipeline.deploy(fleet, version, record.log_path(root, "deploy")).stdout
        record.note(root, "deploy", out.strip().splitlines())
        summary["text"] = out.strip().splitlines()[-1]
    with record.stage(
        root, "predict", "a prediction through each production host's nginx (HTTPS)"
    ) as summary:
        name = pipeline.a_known_repository(fleet)
        answers = {}
        for key in ("p1", "p2"):
            answers[key] = pipeline.predict(fleet, key, name)
        record.note(root, "predictions", answers)
        summary["text"] = "; ".join(f"{k}: {_prediction_line(a)}" for k, a in answers.items())


def _prediction_line(answer: dict) -> str:
    item = answer["predictions"][0]
    return f"{item['full_name']} -> {item['predicted_stars']:.0f} stars (model {answer['model_version']})"


def _status(settings: Settings, name: str) -> tuple[int, str]:
    run = ansible.playbook(settings.root, record.log_path(settings.root, name), "status.yml")
    return run.returncode, _table(run.output)


def _table(output: str) -> str:
    """The table status.yml printed (its debug message, a YAML block scalar)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "msg: |-"), None)
    if start is None:
        return ""
    block = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        block.append(line)
    indent = min(len(line) - len(line.lstrip()) for line in block) if block else 0
    return "\n".join(line[indent:] for line in block)


def do_status(settings: Settings) -> None:
    root, fleet = settings.root, _fleet(settings)
    with record.stage(root, "status-up", "status.yml with everything up (must pass)") as summary:
        code, table = _status(settings, "status-up")
        record.note(root, "status_all_up", {"exit": code, "table": table})
        if code != 0 or not table:
            raise record.StageFailed(f"status.yml failed on a healthy fleet (exit {code})")
        summary["text"] = f"{len(table.splitlines()) - 1} rows, exit 0"
    sup = inventory.host_tree(root, "p2") / "supervisor" / "supervisord.conf"
    stop = f"supervisorctl -c {sup} stop stargazer-celery"
    with record.stage(
        root, "status-down", "status.yml with one Celery worker stopped (must fail)"
    ) as summary:
        log = record.log_path(root, "status-down")
        remote.run(root, fleet.network.address("p2"), stop, log=log)
        try:
            code, table = _status(settings, "status-down")
        finally:
            remote.run(root, fleet.network.address("p2"), stop.replace(" stop ", " start "), log=log)
        record.note(root, "status_celery_stopped", {"exit": code, "table": table})
        down = [line for line in table.splitlines() if " DOWN " in f" {line} "]
        if code == 0 or not any("rehearsal-production-2" in line and "celery" in line for line in down):
            raise record.StageFailed(f"status.yml did not name the stopped worker (exit {code})")
        summary["text"] = f"exit {code}, {len(down)} DOWN rows on rehearsal-production-2"


def do_drills(settings: Settings) -> None:
    root, fleet = settings.root, _fleet(settings)
    with record.stage(
        root, "drill-ray", "a Ray worker host dies during tuning; training finishes"
    ) as summary:
        result = drills.ray_worker_lost(fleet, record.log_path(root, "drill-ray"), settings.trials)
        record.note(root, "drill_ray_worker_lost", result)
        summary["text"] = (
            f"{result['version']} written, finished {result['seconds_after_loss']} s after the loss"
        )
    with record.stage(root, "restore-w2", "the dead worker back: sshd, then site.yml on it") as summary:
        drills.restore_host(fleet, "w2")
        run = ansible.playbook(
            root, record.log_path(root, "restore-w2"), "site.yml", "--limit", inventory.inventory_name("w2")
        )
        if run.returncode != 0:
            raise record.StageFailed(run.failure())
        deadline = time.monotonic() + 180  # the worker joins once supervisord has started it
        while (nodes := pipeline.ray_nodes(fleet, record.log_path(root, "restore-w2"))[0]) < 3:
            if time.monotonic() > deadline:
                raise record.StageFailed(f"only {nodes} Ray nodes 180 s after the worker came back")
            time.sleep(2)
        summary["text"] = f"{nodes} Ray nodes active"
    with record.stage(
        root, "drill-deploy", "a production host lost during deploy; nothing switches"
    ) as summary:
        version = result["version"]
        lost = drills.production_lost_during_deploy(fleet, record.log_path(root, "drill-deploy"), version)
        record.note(root, "drill_production_lost", lost)
        summary["text"] = lost["message"]
    with record.stage(root, "redeploy", "the same deploy with both hosts back: both switch") as summary:
        out = pipeline.deploy(fleet, result["version"], record.log_path(root, "redeploy")).stdout
        record.note(root, "redeploy", out.strip().splitlines())
        summary["text"] = out.strip().splitlines()[-1]


def do_down(settings: Settings) -> None:
    root = settings.root
    started = time.monotonic()
    click.echo("== down: every namespace, process, account and file of the rehearsal ", nl=False)
    ansible.close_control_sockets(root)
    removed = hosts.teardown(settings.prefix, root)
    click.echo(f"ok ({time.monotonic() - started:.1f} s): removed {len(removed)} things")


@click.group()
def main() -> None:
    """The whole stargazer fleet rehearsed on this machine (network namespaces + sshd)."""


@main.command("up")
def up_command() -> None:
    """Create the six hosts and write <root>/hosts.yml."""
    do_up(Settings.from_env())


@main.command("preview")
def preview_command() -> None:
    """site.yml --check --diff on the fresh hosts: what would change, and nothing changes."""
    do_preview(Settings.from_env())


@main.command("converge")
def converge_command() -> None:
    """Run site.yml twice; the second run must change nothing."""
    do_converge(Settings.from_env())


@main.command("pipeline")
def pipeline_command() -> None:
    """On the development host: collect, ray status, train on 3 nodes, deploy; predict through nginx."""
    do_pipeline(Settings.from_env())


@main.command("drills")
def drills_command() -> None:
    """Fault drills: a Ray worker host lost in tuning, a production host lost during deploy."""
    do_drills(Settings.from_env())


@main.command("status")
def status_command() -> None:
    """status.yml on the healthy fleet (passes), then with one Celery worker stopped (fails, naming it)."""
    do_status(Settings.from_env())


@main.command("down")
def down_command() -> None:
    """Remove every namespace, process, account and file the rehearsal made."""
    do_down(Settings.from_env())


@main.command("all")
def all_command() -> None:
    """Every stage, then down (unless REHEARSAL_KEEP=1); wall times in <root>/timings.json."""
    settings = Settings.from_env()
    started = time.monotonic()
    failed = True
    try:
        do_up(settings)
        do_preview(settings)
        do_converge(settings)
        do_pipeline(settings)
        do_drills(settings)
        do_status(settings)
        failed = False
    finally:
        total = round(time.monotonic() - started, 1)
        click.echo(f"rehearsal {'FAILED' if failed else 'passed'} in {total:.1f} s")
        if settings.root.exists():
            record._merge(settings.root / "timings.json", "total", total)
        if settings.keep:
            click.echo(
                f"fleet left up: inventory {settings.root / 'hosts.yml'}; `make rehearsal-down` removes it"
            )
        else:
            _down_keeping_records(settings)


#: What a torn-down rehearsal leaves for reading (``make rehearsal-down`` removes it too).
RECORDS = ("timings.json", "results.json", "log")


def _down_keeping_records(settings: Settings) -> None:
    """Tear the fleet down; the timings, results and logs stay in an otherwise removed directory."""
    root = settings.root
    with tempfile.TemporaryDirectory(prefix="rehearsal-records-") as scratch:
        for name in RECORDS:
            if (root / name).exists():
                shutil.move(str(root / name), scratch)
        do_down(settings)
        root.mkdir(parents=True, exist_ok=True)
        for name in RECORDS:
            if (Path(scratch) / name).exists():
                shutil.move(str(Path(scratch) / name), str(root / name))
