"""What the security groups open for serving: HTTPS (and HTTP only to redirect) to the world, gunicorn only
between fleet members, on the port the inventory hands to the playbooks; and the shipped fleet.yml boots an
image whose Python runs the pinned stack."""

from __future__ import annotations

from provisioning.fleet import load_fleet
from provisioning.security import desired_groups
from tests.provisioning.conftest import Env
from tests.support import REPO_ROOT

#: Images whose python3 is 3.11 or later (docs/provisioning.md); Ubuntu 22.04 (3.10) is not one.
IMAGES_KNOWN_TO_WORK = {"Ubuntu 24.04", "Debian 12"}


def test_gunicorn_is_open_only_between_fleet_members_on_the_port_the_inventory_names(env: Env) -> None:
    env.write_fleet(gunicorn_port=8100)
    result = env.run()
    assert result.exit_code == 0, result.output
    names = [group["name"] for group in env.fake.security_groups.values()]
    on_port = {name: {r for r in env.fake.ingress_rules(name) if r[1] <= 8100 <= r[2]} for name in names}
    assert {name: rules for name, rules in on_port.items() if rules} == {
        "sg-internal": {("tcp", 8100, 8100, None, "sg-internal")}
    }
    inventory = env.inventory_data()["all"]
    assert inventory["vars"]["gunicorn_port"] == 8100
    production = inventory["children"]["production"]["hosts"]["sg-production-1"]
    assert production["private_ip"]  # what gunicorn binds and every production nginx balances to


def test_the_world_reaches_only_https_and_the_http_redirect() -> None:
    fleet = load_fleet(REPO_ROOT / "fleet.yml")
    public = {
        (rule.port_min, rule.port_max)
        for group in desired_groups(fleet)
        for rule in group.rules
        if rule.remote_cidr in {"0.0.0.0/0", "::/0"}
    }
    assert public == {(443, 443), (80, 80)}


def test_the_shipped_fleet_boots_an_image_whose_python_runs_the_pinned_stack() -> None:
    fleet = load_fleet(REPO_ROOT / "fleet.yml")
    images = {fleet.image_for(role) for role in ("orchestration", "development", "ray_workers", "production")}
    assert images <= IMAGES_KNOWN_TO_WORK, images
    docs = (REPO_ROOT / "docs" / "provisioning.md").read_text()
    for image in IMAGES_KNOWN_TO_WORK:
        assert image in docs, f"docs/provisioning.md does not name {image}"

