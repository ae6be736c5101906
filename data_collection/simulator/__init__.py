"""A GitHub REST API simulator on a real loopback port, for tests, benchmarks and the demo.

Command line (blocks; Ctrl-C stops it)::

    python -m data_collection.simulator --port 8765 --repos 10000 --seed 7 --tokens t1,t2,t3
        [--quota-core 5000] [--quota-search 30] [--reset-seconds 2] [--error-rate-502 0.01] ...
    python -m data_collection.simulator --help

Python API (tests)::

    from data_collection.simulator import SimulatorServer, SimulatorConfig

    with SimulatorServer(repos=5000, seed=1, tokens=("tok-a", "tok-b"), reset_seconds=2) as sim:
        sim.url                      # "http://127.0.0.1:<port>": use as GITHUB_API_URL
        sim.stats                    # StatsSnapshot: .requests, .by_endpoint {"search","repo","contributors",
                                     #   "commits","releases","user","rate_limit","graphql","not_found"},
                                     #   .by_status,
                                     #   .by_token, .charged[token][resource], .by_resource, .not_modified,
                                     #   .faults {"502","503","slow","secondary","secondary_violation",
                                     #   "concurrency","exhausted","incomplete"}, .calls("search", 200),
                                     #   .charged_total("core")
        sim.reset_stats()
        sim.expected("stars:>=50")   # every matching Repo (ground truth, beyond the 1000 cap; forks excluded
                                     #   unless the query says fork:true, as on GitHub)
        sim.truth("owner/name")      # dict of the true counts (subscribers, contributors with anon, commits,
                                     #   releases, owner_followers, ...)
        sim.store.repos              # all generated Repo records
        # runtime changes, applied to the next request:
        sim.configure(error_rate_502=0.2, slow_rate=0.1, secondary_rate=0.05, incomplete_rate=0.3,
                      quota_core=100, reset_seconds=1, exhausted_status=429, secondary_status=429,
                      max_concurrent=8, graphql=False, contributors_too_large_commits=2000)
        sim.exhaust("tok-a", "core")     # spend a token's quota until its window resets
        sim.revoke("tok-b")              # 401 Bad credentials from now on; sim.add_token("tok-c") adds one
        sim.force_errors(5, status=502)  # a storm: the next 5 requests answer 502
        sim.force_secondary(1)           # the next request: 403 secondary limit + Retry-After
        sim.reset_limits()               # fresh windows for everyone

Endpoints: /search/repositories, /repos/{o}/{n}, /repos/{o}/{n}/{contributors,commits,releases},
/users/{login}, /rate_limit, POST /graphql (a subset: see graphql.py); with `control=True` (CLI `--control`)
also GET /_simulator/stats and POST /_simulator/control, for a simulator run as a separate process.

`SimulatorServer(config, **overrides)` takes a `SimulatorConfig` and/or its field names as keywords; the
port is 0 (any free port) unless given. Keyword `repos=` is the number of repositories to generate; pass
`pages=(path, ...)` to serve genuine search pages instead. Endpoints and behaviour: docs/simulator.md.
"""

from data_collection.simulator.config import SimulatorConfig
from data_collection.simulator.model import Owner, Repo
from data_collection.simulator.server import SimulatorServer
from data_collection.simulator.stats import StatsSnapshot

__all__ = ["Owner", "Repo", "SimulatorConfig", "SimulatorServer", "StatsSnapshot"]
