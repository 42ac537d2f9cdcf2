"""The command line keeps TensorFlow's native start-up lines off the terminal, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from two_stage_rec.cli._native_logs import is_native_log_line

NATIVE = [
    b"I0000 00:00:1796162567.713605   29844 port.cc:153] oneDNN custom operations are on.",
    b"E0000 00:00:1796161783.262401   18234 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    b"W0000 00:00:1796162567.714066   29844 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    b"appropriate compiler flags.",
]
KEPT = [
    b"error: unknown user(s): '5000'",
    b"WARNING: the models in models/ were trained for another split",
    b"Traceback (most recent call last):",
    b"indexed 1,682 items in a faiss store",
    b"I0000 is not a log line without the rest of the absl prefix",
]


@pytest.mark.parametrize("line", NATIVE)
def test_native_lines_are_recognised(line: bytes) -> None:
    assert is_native_log_line(line)


@pytest.mark.parametrize("line", KEPT)
def test_other_lines_are_kept(line: bytes) -> None:
    assert not is_native_log_line(line)


def run(code: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "TWO_STAGE_REC_NATIVE_LOGS"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_the_filter_drops_native_lines_and_keeps_the_rest_even_at_exit() -> None:
    code = (
        "import os, sys\n"
        "from two_stage_rec.cli._native_logs import quiet_native_logs\n"
        "quiet_native_logs()\n"
        "os.write(2, b'I0000 00:00:17.71 29844 port.cc:153] native noise\\n')\n"
        "print('error: kept for the user', file=sys.stderr)\n"
        "os.write(2, b'last words without a newline')\n"
        "sys.exit(3)\n"
    )
    completed = run(code)
    assert completed.returncode == 3
    assert "native noise" not in completed.stderr
    assert "error: kept for the user" in completed.stderr and completed.stderr.endswith("last words without a newline")


def test_importing_tensorflow_under_the_filter_prints_no_native_lines(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="the tensorflow extra is not installed")
    code = (
        "from two_stage_rec.cli._native_logs import quiet_native_logs\n"
        "quiet_native_logs()\n"
        "import tensorflow as tf\n"
        "print(int(tf.constant(2) + 1))\n"
    )
    completed = run(code)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "3"
    assert not [line for line in completed.stderr.splitlines() if is_native_log_line(line.encode())], completed.stderr
    assert "absl" not in completed.stderr and "cuda" not in completed.stderr.lower()


@pytest.mark.integration
def test_the_command_line_prints_no_native_lines(tiny_movielens_models: Path) -> None:
    code = "from two_stage_rec.cli import main; main()"
    completed = subprocess.run(
        [
            *(sys.executable, "-c", code, "recommend", "--models", str(tiny_movielens_models), "--user", "42"),
            *("--backend", "tensorflow", "--store", "memory"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Top 10 for user 42" in completed.stdout
    assert not [line for line in completed.stderr.splitlines() if is_native_log_line(line.encode())], completed.stderr
