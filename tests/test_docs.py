"""The docs stay true: the site builds in strict mode, every public module has an
API page, and the guides' Python examples run and print what the page says.

Strict mode turns every warning into a failure: a broken link, a nav entry
without a page, a docstring parameter that is not in the signature. So a
renamed module, parameter or page breaks this test instead of the site.

Each guide page's ```python blocks run in order in one namespace, in a fresh
directory. A block immediately followed by a ```text block must print exactly
that text. Examples that need a trained ``models/`` bundle get the tiny
one trained on ML-100K (``tiny_movielens_models``), so their printed output is
not compared (no ```text block follows them). A page whose examples train or
read files needs the ``tensorflow`` or ``data`` extra, and is skipped (saying
which) without it. A block preceded by
``<!-- skip-test: reason -->`` is not run (e.g. full training, the Pinecone
cloud); the reason is on the page. Each page runs in a subprocess
(``tests/doc_examples.py``), so an example that blocks fails by timeout
instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import doc_examples

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "two_stage_rec"
DOCS = ROOT / "docs"
API_DOCS = DOCS / "api"

# A mkdocstrings block: a line "::: dotted.path" (options may follow, indented).
AUTODOC = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)
# Examples that read MovieLens or a models directory need the real data (integration);
# those that read a models directory get the tiny trained bundle as ./models.
NEEDS_DATA = re.compile(r"movielens_100k|split_for_protocol|canonical_split|train_movielens_bundle|[\"']models/")
MODELS_DIR = re.compile(r"[\"']models/")
# Examples that train, or read files with the readers, need those extras; without them the page is skipped.
NEEDS_EXTRA = {
    "tensorflow": re.compile(r"\btrain_(bundle|models|pipeline|movielens_bundle)\("),
    "pandas": re.compile(r"\bread_(interactions|catalogue)\(|_from_dataframe\("),
}
EXTRA_OF = {"tensorflow": "tensorflow", "pandas": "data"}


def public_modules() -> set[str]:
    """Every module of the package a user may import: no ``_private`` part, not the CLI.

    The CLI's modules are its implementation; the commands are documented in
    the command-line guide, generated from ``--help``.
    """
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part.startswith("_") for part in parts) or parts[:2] == ["two_stage_rec", "cli"]:
            continue
        modules.add(".".join(parts))
    return modules


def documented_modules() -> set[str]:
    return {match for page in API_DOCS.glob("*.md") for match in AUTODOC.findall(page.read_text("utf-8"))}


def test_public_modules_are_found() -> None:
    # Guards the walk above: if it found nothing, the next test would pass vacuously.
    modules = public_modules()
    assert {"two_stage_rec", "two_stage_rec.stores.faiss", "two_stage_rec.testing.contract"} <= modules
    assert not any(".cli" in module or "._" in module for module in modules)


def test_every_public_module_has_an_api_page() -> None:
    missing = sorted(public_modules() - documented_modules())
    assert not missing, f"add a '::: module' block to a page in docs/api/ for: {missing}"


def test_api_pages_reference_only_existing_modules() -> None:
    stale = sorted(documented_modules() - public_modules())
    assert not stale, f"docs/api/ documents modules that no longer exist (or are private): {stale}"


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="building the docs needs the 'docs' extra (mkdocs)")
    pytest.importorskip("mkdocstrings", reason="building the docs needs the 'docs' extra (mkdocstrings)")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + ("\n".join(warnings) or result.stderr)
    assert (tmp_path / "site" / "api" / "stores" / "index.html").is_file()


def example_pages() -> list[object]:
    """Guide pages with Python examples (API pages show third-party code: not run)."""
    params: list[object] = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text("utf-8")
        if API_DOCS in page.parents or "```python" not in text:
            continue
        runnable = "".join(m["code"] for m in doc_examples.examples(text) if m["skip"] is None)
        marks = [pytest.mark.integration] if NEEDS_DATA.search(runnable) else []
        params.append(pytest.param(page, marks=marks, id=str(page.relative_to(DOCS))))
    return params


@pytest.mark.parametrize("page", example_pages())
def test_page_examples_run_and_print_what_the_page_shows(
    page: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    examples = doc_examples.examples(page.read_text("utf-8"))
    runnable = [m["code"] for m in examples if m["skip"] is None]
    if not runnable:
        pytest.skip("every example on this page is marked skip-test: " + "; ".join(m["skip"] for m in examples))
    source = "".join(runnable)
    for module, pattern in NEEDS_EXTRA.items():
        if pattern.search(source):
            pytest.importorskip(module, reason=f"the examples on this page need the '{EXTRA_OF[module]}' extra")
    env = {**os.environ}
    if NEEDS_DATA.search(source):
        env["TWO_STAGE_REC_DATA"] = str(request.getfixturevalue("movielens_dir"))
    if MODELS_DIR.search(source):
        models = request.getfixturevalue("tiny_movielens_models")
        (tmp_path / "models").symlink_to(models, target_is_directory=True)
    result = subprocess.run(
        [sys.executable, doc_examples.__file__, str(page)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-5000:]


# ------------------------------------------------------------------ generated outputs


def _generator() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_outputs", ROOT / "docs" / "generate_outputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line_guide_shows_todays_help() -> None:
    """The help texts on the CLI page are today's ``--help`` (regenerate: docs/generate_outputs.py cli)."""
    generator: Any = _generator()
    lines = generator.CLI_PAGE.read_text(encoding="utf-8").split("\n")
    blocks = generator.help_blocks(lines)
    assert len(blocks) == 8  # the top level, data info, data download, train, recommend, demo, evaluate, serve
    for args, start, end in blocks:
        assert lines[start:end] == generator.help_text(args), f"two-stage-rec {' '.join(args)} --help changed"


def test_serving_guide_answers_match_the_response_schemas() -> None:
    """The service answers on the serving page parse as today's response models (regenerate: ... serving)."""
    pytest.importorskip("fastapi", reason="the serving schemas need the 'serve' extra")
    from two_stage_rec.serving.schemas import BatchRecommendationResponse, UserRecommendations

    generator: Any = _generator()
    text = generator.SERVING_PAGE.read_text(encoding="utf-8")
    start = text.index("```console\n", text.index("## From the command line")) + len("```console\n")
    block = text[start : text.index("\n```", start)]
    answers = [chunk[chunk.index("\n{") + 1 :] for chunk in re.split(r"\n(?=\$ curl)", block)]
    assert len(answers) == len(generator.SERVING_REQUESTS)
    single, batch, newcomer = (json.loads(answer) for answer in answers)
    UserRecommendations.model_validate(single)
    BatchRecommendationResponse.model_validate(batch)
    assert UserRecommendations.model_validate(newcomer).items[0].source == "fallback"


def test_serving_guide_request_option_answers_match_the_response_schemas() -> None:
    """The answers under "Request options" parse as today's response models and show what they claim."""
    pytest.importorskip("fastapi", reason="the serving schemas need the 'serve' extra")
    from two_stage_rec.serving.schemas import BatchRecommendationResponse, UserRecommendations

    generator: Any = _generator()
    text = generator.SERVING_PAGE.read_text(encoding="utf-8")
    start = text.index("```console\n", text.index(generator.OPTIONS_HEADING)) + len("```console\n")
    block = text[start : text.index("\n```", start)]
    answers = [chunk[chunk.index("\n{") + 1 :] for chunk in re.split(r"\n(?=\$ curl)", block)]
    assert len(answers) == len(generator.OPTION_REQUESTS)
    folded, with_policies = (json.loads(answer) for answer in answers)
    newcomer = UserRecommendations.model_validate(folded)
    assert newcomer.items and all(item.folded_in and item.explanation is not None for item in newcomer.items)
    capped = BatchRecommendationResponse.model_validate(with_policies).results[0].items
    genres = [genre for item in capped for genre in item.metadata.get("genres", [])]  # type: ignore[union-attr]
    assert len(genres) == len(set(genres))  # max_per genres=1
