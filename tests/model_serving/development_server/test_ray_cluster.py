"""A Ray head and a worker in two network namespaces (own addresses, own --temp-dir, token auth), started by
scripts/ray_head.sh and scripts/ray_worker.sh; a tuning run through the CLI whose trials run on BOTH nodes."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from model_serving.development_server.netns_cluster import _our_pids, namespace_cluster
from synthetic.dataset import synthetic_dataset
from tests.support import require_executable, require_root

pytestmark = pytest.mark.integration


def test_tuning_trials_run_on_head_and_worker(tmp_path: Path) -> None:
    require_root("network namespaces")
    require_executable("ip", "/usr/sbin/ip", "/sbin/ip")
    data = tmp_path / "repos.csv"
    synthetic_dataset(120, seed=2).to_csv(data, index=False)
    out = tmp_path / "tuning"
    with namespace_cluster(workers=1, cpus_per_node=1, subnet="10.201.0") as cluster:
        root = cluster.root
        run = cluster.run_driver(
            [
                str(Path(os.sys.executable)),
                "-m",
                "model_serving.development_server",
                "tune",
                "--data",
                str(data),
                "--trials",
                "2",
                "--folds",
                "2",
                "--search",
                "random",
                "--out",
                str(out),
                "--min-nodes",
                "2",
                "--no-reuse-actors",
            ],
            timeout=300,
        )
        assert run.returncode == 0, (
            run.stdout[-3000:],
            run.stderr[-3000:],
            cluster.head.log.read_text()[-2000:],
        )
        assert (cluster.head.temp_dir / "session_latest").exists()
        assert (cluster.workers[0].temp_dir / "session_latest").exists()
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["status"] == "ok").all()
    assert set(trials["node"]) == {"10.201.0.11", "10.201.0.12"}
    assert "ray: 10.201.0.11:6379, 2 node(s), 2 CPUs" in run.stdout
    assert not _our_pids(root), "cluster processes left running"
    assert not root.exists()
