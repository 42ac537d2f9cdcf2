"""Batch scoring on a real Dask LocalCluster writes the single-process bytes.

Two clusters: two worker threads in this process (fast; lets a test count
how often the bundle is loaded) and two worker processes (what a real
cluster does: the plugin, the tasks and the errors cross process boundaries
by pickle).
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from batch_bundles import USERS, write_small_bundle
from two_stage_rec.assembly import assemble
from two_stage_rec.batch_scoring import score_users
from two_stage_rec.cli import app
from two_stage_rec.errors import (
    InvalidFilterError,
    InvalidInputError,
    MissingDependencyError,
    ModelError,
    UnknownUserError,
)

pytest.importorskip("distributed", reason="batch scoring on Dask needs the 'dask' extra")

from distributed import Client

from two_stage_rec.distributed import BundleSpec, dask_client, score_users_distributed

# 60 known users, 3 unknown, 18 repeated: 81 lines, so neither chunks (4) nor partitions (12) divide it.
INPUT = [*USERS, "new-1", *USERS[:9], "new-2", "new-3", *USERS[20:29]]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_bundle(tmp_path_factory.mktemp("distributed") / "models")


@pytest.fixture(scope="module")
def single_process(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The reference: the same job in this process, with the same chunk size.

    This process may run BLAS with more threads than the workers (which Dask
    starts with OMP_NUM_THREADS=1); chunks of 4 stay below FAISS's BLAS
    threshold and 80 items have no near-ties, so the bytes agree all the same
    (the benchmark compares the two at scale, with equal thread settings).
    """
    output = tmp_path_factory.mktemp("single") / "recs.jsonl"
    with assemble(bundle) as served:
        score_users(served, INPUT, output, k=10, chunk_size=4)
    return output.read_bytes()


@pytest.fixture(scope="module")
def threads() -> Iterator[Client]:
    with dask_client(workers=2, processes=False) as client:
        yield client


@pytest.fixture(scope="module")
def processes() -> Iterator[Client]:
    with dask_client(workers=2, processes=True) as client:
        yield client


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_worker_threads_write_the_single_process_bytes_and_load_the_bundle_once_each(
    threads: Client, bundle: Path, single_process: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import two_stage_rec._distributed_worker as worker

    loads: list[str] = []

    def counting_assemble(path: str, **options: Any) -> Any:
        loads.append(path)
        return assemble(path, **options)

    monkeypatch.setattr(worker, "assemble", counting_assemble)
    output = tmp_path / "recs.jsonl"
    result = score_users_distributed(threads, bundle, INPUT, output, k=10, chunk_size=4, partition_size=12)
    assert output.read_bytes() == single_process
    assert (result.users, result.from_model, result.fallback) == (len(INPUT), len(INPUT) - 3, 3)
    assert loads == [str(bundle.resolve())] * 2  # 7 partitions, 2 workers: one load per worker
    assert leftovers(tmp_path) == []  # no partial output, no part files
    # The plugin is removed after the job: the workers hold no recommender any more.
    plugins = threads.run(lambda dask_worker: list(dask_worker.plugins))
    assert len(plugins) == 2 and not [name for names in plugins.values() for name in names if "two-stage-rec" in name]


def test_worker_processes_write_the_single_process_bytes(
    processes: Client, bundle: Path, single_process: bytes, tmp_path: Path
) -> None:
    output = tmp_path / "recs.jsonl"
    parts = tmp_path / "parts"
    spec = BundleSpec(path=str(bundle), store="memory", reranker="recommended")
    result = score_users_distributed(
        processes, spec, iter(INPUT), output, k=10, chunk_size=4, partition_size=8, parts_dir=parts
    )
    assert output.read_bytes() == single_process
    assert result.users == len(INPUT) and result.fallback == 3
    assert leftovers(tmp_path) == [] and list(parts.iterdir()) == []


def test_a_bundle_the_workers_cannot_load_fails_before_any_output(
    processes: Client, bundle: Path, tmp_path: Path
) -> None:
    output = tmp_path / "recs.jsonl"
    with pytest.raises(ModelError, match="does not exist"):
        score_users_distributed(processes, tmp_path / "no-models", USERS, output)
    with pytest.raises(InvalidInputError, match="no-such-store"):
        score_users_distributed(processes, BundleSpec(path=str(bundle), store="no-such-store"), USERS, output)
    assert list(tmp_path.iterdir()) == []


def test_a_worker_error_keeps_the_previous_output(processes: Client, bundle: Path, tmp_path: Path) -> None:
    output = tmp_path / "recs.jsonl"
    output.write_text("previous run\n", encoding="utf-8")
    with pytest.raises(InvalidFilterError):
        score_users_distributed(processes, bundle, USERS, output, filter={"genre": {"$regex": "o"}}, chunk_size=4)
    assert output.read_text(encoding="utf-8") == "previous run\n"
    assert leftovers(tmp_path) == []


def test_bad_settings_are_refused_before_the_cluster_is_asked(threads: Client, bundle: Path, tmp_path: Path) -> None:
    output = tmp_path / "recs.jsonl"
    with pytest.raises(InvalidInputError, match="multiple of chunk_size"):
        score_users_distributed(threads, bundle, USERS, output, chunk_size=4, partition_size=10)
    with pytest.raises(InvalidInputError, match="multiple of chunk_size"):
        score_users_distributed(threads, bundle, USERS, output, chunk_size=8, partition_size=4)
    with pytest.raises(InvalidInputError, match="candidates"):
        score_users_distributed(threads, bundle, USERS, output, k=10, candidates=5)
    with pytest.raises(InvalidInputError, match="no user ids"):
        score_users_distributed(threads, bundle, [], output)
    assert list(tmp_path.iterdir()) == []


def test_library_errors_cross_process_boundaries_intact() -> None:
    import two_stage_rec._distributed_worker  # noqa: F401  (registers the reducers)

    missing = pickle.loads(pickle.dumps(MissingDependencyError("faiss-cpu", "faiss")))
    assert isinstance(missing, MissingDependencyError) and missing.extra == "faiss"
    assert 'pip install "two-stage-rec[faiss]"' in str(missing)
    unknown = pickle.loads(pickle.dumps(UnknownUserError(["u-9"])))
    assert unknown.keys == ["u-9"] and str(unknown) == "unknown user(s): 'u-9'"


def test_dask_client_needs_exactly_one_cluster() -> None:
    with pytest.raises(InvalidInputError, match="either a scheduler address or a number"), dask_client():
        pass
    with pytest.raises(InvalidInputError, match="either"), dask_client("tcp://127.0.0.1:1", workers=2):
        pass
    with pytest.raises(InvalidInputError, match="at least 1"), dask_client(workers=0):
        pass


def test_a_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "two-stage-rec\[dask\]"'), dask_client(workers=1):
        pass


def test_the_command_line_on_a_cluster_by_scheduler_address_writes_the_single_process_file(
    processes: Client, bundle: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n".join(INPUT) + "\n", encoding="utf-8")
    base = ["recommend", "--models", str(bundle), "--users-file", str(users_file), "--no-progress", "--k", "5"]
    local = runner.invoke(app, [*base, "--output", str(tmp_path / "local.jsonl")])
    assert local.exit_code == 0, local.output
    address = str(processes.scheduler_info()["address"])
    spread = runner.invoke(app, [*base, "--output", str(tmp_path / "dask.jsonl"), "--scheduler", address])
    assert spread.exit_code == 0, spread.output
    assert f"wrote {len(INPUT)} users" in spread.output
    assert (tmp_path / "dask.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


def test_the_command_line_starts_local_dask_workers(bundle: Path, single_process: bytes, tmp_path: Path) -> None:
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n".join(INPUT) + "\n", encoding="utf-8")
    output = tmp_path / "recs.jsonl"
    args = ["recommend", "--models", str(bundle), "--users-file", str(users_file), "--no-progress", "--k", "10"]
    result = CliRunner().invoke(app, [*args, "--store", "memory", "--output", str(output), "--dask-workers", "1"])
    assert result.exit_code == 0, result.output
    # The reference ran FAISS in chunks of 4, this run the memory store in chunks of 256: ids exactly, scores closely.
    got = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    expected = [json.loads(line) for line in single_process.decode("utf-8").splitlines()]
    assert [(line["user_id"], line["source"]) for line in got] == [
        (line["user_id"], line["source"]) for line in expected
    ]
    for mine, reference in zip(got, expected, strict=True):
        assert [item["item_id"] for item in mine["items"]] == [item["item_id"] for item in reference["items"]]
        assert [item["score"] for item in mine["items"]] == pytest.approx(
            [item["score"] for item in reference["items"]], abs=1e-5
        )


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_on_a_tiny_catalogue(tmp_path: Path) -> None:
    """benchmarks/batch_scoring.py at toy size: it writes what docs/benchmarks.md quotes (no timing asserted)."""
    pytest.importorskip("faiss", reason="the benchmark serves from the faiss store")
    import importlib

    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(benchmarks))
    try:
        bench = importlib.import_module("batch_scoring")
        out = tmp_path / "batch.json"
        results = bench.run(600, 300, 2, None, out, quiet=True)
    finally:
        sys.path.remove(str(benchmarks))
    assert json.loads(out.read_text()) == results
    assert results["identical_output"] is True and results["scored_all_users"] is True
    for run in (results["single_process"], results["dask"]):
        assert (run["users"], run["fallback"]) == (600, 6) and run["users_per_second"] > 0
    assert set(results["single_process"]["rss_mib"]) >= {"after_load", "10pct", "50pct", "100pct", "peak"}
    assert len(results["dask"]["worker_rss_mib"]["100pct"]) == 2
