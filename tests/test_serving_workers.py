"""The service's settings from the environment, and ``two-stage-rec serve --workers N`` as real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from synthetic_models import write_synthetic_models
from two_stage_rec import InvalidInputError
from two_stage_rec.assembly import assemble
from two_stage_rec.serving import BatchingSettings
from two_stage_rec.serving.service import ENV_PREFIX, ServiceSettings


def test_settings_survive_the_trip_through_the_environment() -> None:
    settings = ServiceSettings(
        models=Path("bundle"),
        store="memory",
        store_settings={"metric_hint": "dotproduct", "shards": 2},
        backend="numpy",
        reranker="scoring",
        fallback=False,
        batching=BatchingSettings(max_wait_ms=0.5, max_batch_size=32),
    )
    environment = settings.to_environment()
    assert all(name.startswith(ENV_PREFIX) for name in environment)
    assert ServiceSettings.from_environment(environment) == settings
    unbatched = ServiceSettings(models=Path("bundle"), batching=None)
    assert ServiceSettings.from_environment(unbatched.to_environment()) == unbatched
    assert ServiceSettings.from_environment({f"{ENV_PREFIX}MODELS": "m"}) == ServiceSettings(models=Path("m"))


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "TWO_STAGE_REC_SERVE_MODELS"),
        ({"BACKEND": "torch"}, "TWO_STAGE_REC_SERVE_BACKEND"),
        ({"RERANKER": "best"}, "TWO_STAGE_REC_SERVE_RERANKER"),
        ({"STORE_SETTINGS": "[1, 2]"}, "TWO_STAGE_REC_SERVE_STORE_SETTINGS"),
        ({"STORE_SETTINGS": "{oops"}, "TWO_STAGE_REC_SERVE_STORE_SETTINGS"),
        ({"FALLBACK": "maybe"}, "TWO_STAGE_REC_SERVE_FALLBACK"),
        ({"BATCH_WAIT_MS": "soon"}, "TWO_STAGE_REC_SERVE_BATCH_WAIT_MS"),
        ({"MAX_BATCH_SIZE": "2.5"}, "TWO_STAGE_REC_SERVE_MAX_BATCH_SIZE"),
    ],
)
def test_bad_environment_names_the_variable(variables: dict[str, str], message: str) -> None:
    environ = {f"{ENV_PREFIX}{name}": value for name, value in variables.items()}
    if variables:
        environ[f"{ENV_PREFIX}MODELS"] = "bundle"
    with pytest.raises(InvalidInputError, match=message):
        ServiceSettings.from_environment(environ)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _recommendations_counted(metrics: str) -> float:
    """The total of ``two_stage_rec_http_requests_total`` for ``GET /recommendations/{user_id}``, 200."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "two_stage_rec_http_requests_total"
        and sample.labels == {"endpoint": "/recommendations/{user_id}", "method": "GET", "status": "200"}
    )


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.mark.integration
def test_serve_with_two_worker_processes(tmp_path: Path, movielens_dir: Path) -> None:
    if not Path("/proc/self/task").exists():
        pytest.skip("counting worker processes reads /proc (Linux)")
    models = write_synthetic_models(tmp_path / "bundle", dimension=8, seed=5, data_dir=movielens_dir)
    port = _free_port()
    command = [sys.executable, "-c", "from two_stage_rec.cli import main; main()", "serve"]
    command += ["--models", str(models), "--store", "memory", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the workers did not become ready"
                time.sleep(0.2)
            answers = {user: http.get(f"/recommendations/{user}", params={"k": 5}) for user in ("1", "42", "900")}
            # New connections from several threads, so that both workers accept some.
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda n: httpx.get(f"{base_url}/recommendations/{n}").status_code, range(40)))
            assert statuses == [200] * 40
            # /metrics adds up every worker's counts, whichever worker answers the scrape.
            scraped = [_recommendations_counted(httpx.get(f"{base_url}/metrics").text) for _ in range(6)]
            assert scraped == [43.0] * 6
            # The supervisor and its two workers (plus multiprocessing's resource tracker).
            workers = [c for c in _children(server.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
            assert len(workers) == 2
        with assemble(models, store="memory") as served:
            for user, response in answers.items():
                assert response.status_code == 200
                expected = [r.item_id for r in served.recommend(user, k=5)]
                assert [item["item_id"] for item in response.json()["items"]] == expected
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output = server.communicate(timeout=30)[0].decode()
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0, output
    assert "2 worker processes" in output
    assert all(not Path(f"/proc/{worker}").exists() for worker in workers)


def test_workers_report_a_bad_bundle_before_starting(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-c", "from two_stage_rec.cli import main; main()", "serve"]
    command += ["--models", str(tmp_path), "--store", "memory", "--workers", "2", "--port", str(_free_port())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert "not a models bundle" in result.stderr and "Traceback" not in result.stderr
