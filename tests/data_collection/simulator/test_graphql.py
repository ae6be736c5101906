"""POST /graphql: batched counts with aliases, variables and fragments, GitHub's errors and point quota."""

from __future__ import annotations

import requests

from data_collection.simulator import SimulatorServer
from tests.support import SIMULATOR_TOKENS, MakeSim, bearer

BATCH = """
query Counts($o0: String!, $n0: String!, $o1: String!, $n1: String!, $o2: String!, $n2: String!) {
  r0: repository(owner: $o0, name: $n0) { ...counts }
  r1: repository(owner: $o1, name: $n1) { ...counts }
  r2: repository(owner: $o2, name: $n2) { ...counts }
}
fragment counts on Repository {
  nameWithOwner stargazerCount
  watchers { totalCount }
  releases { totalCount }
  defaultBranchRef { target { ... on Commit { history { totalCount } } } }
  owner { __typename login ... on User { followers { totalCount } } }
}
"""


def _post(http: requests.Session, sim: SimulatorServer, query: str, token: str | None = SIMULATOR_TOKENS[0],
          **variables: object) -> requests.Response:
    return http.post(f"{sim.url}/graphql", json={"query": query, "variables": variables},
                     headers=bearer(token) if token else {})


def test_batched_counts_match_the_truth(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(repos=2000)
    user_repo = next(r for r in sim.store.repos if r.owner.type == "User" and not r.empty)
    org_repo = next(r for r in sim.store.repos if r.owner.type == "Organization" and not r.empty)
    empty = next(r for r in sim.store.repos if r.empty)
    names = [user_repo.full_name, org_repo.full_name, empty.full_name]
    variables = {}
    for i, full_name in enumerate(names):
        variables[f"o{i}"], variables[f"n{i}"] = full_name.split("/")
    r = _post(http, sim, BATCH, **variables)
    assert r.status_code == 200 and r.headers["x-ratelimit-resource"] == "graphql"
    assert r.headers["x-ratelimit-used"] == "1" and r.headers["x-ratelimit-limit"] == "5000"
    data = r.json()["data"]
    user = data["r0"]
    assert user["nameWithOwner"] == user_repo.full_name
    assert user["watchers"]["totalCount"] == user_repo.subscribers_count
    assert user["releases"]["totalCount"] == user_repo.releases_count
    assert user["defaultBranchRef"]["target"]["history"]["totalCount"] == user_repo.commits_count
    assert user["owner"] == {"__typename": "User", "login": user_repo.owner.login,
                             "followers": {"totalCount": user_repo.owner.followers}}
    assert data["r1"]["owner"] == {"__typename": "Organization", "login": org_repo.owner.login}
    assert data["r2"]["defaultBranchRef"] is None  # an empty repository has no branch
    assert sim.stats.calls("graphql", 200) == 1 and sim.stats.charged_total("core") == 0


def test_unknown_repository_is_null_with_not_found(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    real = sim.store.repos[0]
    owner, name = real.full_name.split("/")
    body = _post(http, sim, BATCH, o0=owner, n0=name, o1="nobody", n1="nothing", o2=owner, n2=name).json()
    assert body["data"]["r1"] is None and body["data"]["r0"]["nameWithOwner"] == real.full_name
    (error,) = body["errors"]
    assert error["type"] == "NOT_FOUND" and error["path"] == ["r1"]
    assert error["message"] == "Could not resolve to a Repository with the name 'nobody/nothing'."


def test_invalid_queries_answer_errors_without_data(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim()
    owner, name = sim.store.repos[0].full_name.split("/")
    query = f'{{ repository(owner: "{owner}", name: "{name}") {{ contributors }} }}'
    unknown = _post(http, sim, query).json()
    assert "data" not in unknown
    assert unknown["errors"][0]["message"] == "Field 'contributors' doesn't exist on type 'Repository'"
    assert "Parse error" in _post(http, sim, "{ repository(owner: ").json()["errors"][0]["message"]
    assert _post(http, sim, "mutation { x }").json()["errors"]
    missing = http.post(f"{sim.url}/graphql", json={"variables": {}}, headers=bearer()).json()
    assert missing["errors"][0]["message"].startswith("A query attribute must be specified")
    bad_json = http.post(f"{sim.url}/graphql", data=b"{nope", headers=bearer())
    assert bad_json.status_code == 400 and bad_json.json()["message"] == "Problems parsing JSON"


def test_authentication_quota_and_switch(make_sim: MakeSim, http: requests.Session) -> None:
    sim = make_sim(quota_graphql=2)
    anon = _post(http, sim, "{ viewer { login } }", token=None)
    assert anon.status_code == 401 and "requires you to be authenticated" in anon.json()["message"]
    limits = "{ rateLimit { limit cost remaining used } }"
    assert _post(http, sim, limits).json()["data"]["rateLimit"] == {"limit": 2, "cost": 1, "remaining": 1,
                                                                    "used": 1}
    _post(http, sim, limits)
    spent = _post(http, sim, limits)
    assert spent.status_code == 200 and spent.headers["x-ratelimit-remaining"] == "0"
    assert spent.json()["errors"][0]["type"] == "RATE_LIMITED" and "data" not in spent.json()
    sim.configure(graphql=False)
    assert _post(http, sim, limits).status_code == 404
