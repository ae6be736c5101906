"""plan.py without a cloud: how counts, indexes and failures turn into actions."""

from __future__ import annotations

from provisioning.cloud import Observed, ServerInfo
from provisioning.fleet import Fleet
from provisioning.plan import CreateServer, DeleteServer, Plan, build_plan


def _fleet(workers: int) -> Fleet:
    return Fleet.model_validate(
        {
            "name": "f",
            "image": "img",
            "network": "net",
            "keypair": {"name": "k"},
            "ssh_cidr": "10.0.0.5/32",
            "roles": {
                "development": {"count": 1, "flavor": "m"},
                "ray_workers": {"count": workers, "flavor": "m"},
            },
        }
    )


def _server(role: str, index: int, status: str = "ACTIVE") -> ServerInfo:
    slug = {"development": "development", "ray_workers": "ray-worker"}[role]
    return ServerInfo(
        id=f"{role}-{index}",
        name=f"f-{slug}-{index}",
        role=role,
        index=index,
        status=status,
        flavor="m",
        private_ip="10.0.0.9",
    )


def _observed(*servers: ServerInfo) -> Observed:
    return Observed(keypair_exists=True, servers=list(servers))


def _created(plan: Plan) -> list[str]:
    return [a.name for a in plan.of(CreateServer)]


def test_a_gap_in_the_indexes_is_filled_first_and_nothing_healthy_is_replaced() -> None:
    obs = _observed(_server("development", 1), *(_server("ray_workers", i) for i in (1, 2, 4)))
    assert _created(build_plan(_fleet(3), obs, public_key=None, cleanup_failed=False)) == []
    plan = build_plan(_fleet(5), obs, public_key=None, cleanup_failed=False)
    assert _created(plan) == ["f-ray-worker-3", "f-ray-worker-5"]
    assert plan.of(DeleteServer) == []


def test_shrinking_deletes_from_the_highest_index_down() -> None:
    obs = _observed(_server("development", 1), *(_server("ray_workers", i) for i in (1, 2, 4)))
    plan = build_plan(_fleet(1), obs, public_key=None, cleanup_failed=False)
    assert [a.server.name for a in plan.of(DeleteServer)] == ["f-ray-worker-4", "f-ray-worker-2"]


def test_error_servers_fail_the_plan_unless_cleaned_up_and_replaced_at_the_same_index() -> None:
    broken = ServerInfo(
        id="w2",
        name="f-ray-worker-2",
        role="ray_workers",
        index=2,
        status="ERROR",
        fault="No valid host was found.",
    )
    obs = _observed(_server("development", 1), _server("ray_workers", 1), broken)
    kept = build_plan(_fleet(2), obs, public_key=None, cleanup_failed=False)
    assert kept.failed == [broken] and not kept.of(CreateServer) and not kept.of(DeleteServer)
    assert any("is ERROR: No valid host was found." in n for n in kept.notes)
    cleaned = build_plan(_fleet(2), obs, public_key=None, cleanup_failed=True)
    assert cleaned.failed == []
    assert [a.server.name for a in cleaned.of(DeleteServer)] == ["f-ray-worker-2"]
    assert _created(cleaned) == ["f-ray-worker-2"]
    lines = cleaned.render()
    assert lines.index(
        "  - server f-ray-worker-2 (ERROR: No valid host was found.; --cleanup-failed)"
    ) < lines.index("  + server f-ray-worker-2 (ray_workers, m, img)")
