"""Regenerate the outputs the guides show, so that they are produced, not pasted.

* ``docs/guides/cli.md``: every command's ``--help`` (the first ``text`` block
  after each ``## two-stage-rec ...`` heading, and the top-level one).
* ``docs/guides/serving.md``: the answers of the three example requests (the
  ``console`` block after "## From the command line") and of the two request
  options examples (the one after "## Request options"), asked of the service
  built by ``two-stage-rec serve`` for a bundle you name.

Usage (from the repository root)::

    .venv/bin/python docs/generate_outputs.py cli
    .venv/bin/python docs/generate_outputs.py serving --models models/

``tests/test_docs.py`` checks that the help blocks equal today's ``--help``
and that the service answers shown parse as the service's response schemas.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI_PAGE = ROOT / "docs" / "guides" / "cli.md"
SERVING_PAGE = ROOT / "docs" / "guides" / "serving.md"
HELP_WIDTH = "100"
HEADING = re.compile(r"^## two-stage-rec (.+)$")

SERVING_REQUESTS: list[tuple[str, dict[str, object] | None]] = [
    ("/recommendations/42?k=2", None),  # GET
    ("/recommendations", {"user_ids": ["1", "2"], "k": 2, "filter": {"year": {"$lt": 1980}}}),  # POST
    ("/recommendations/somebody-new?k=1", None),  # GET
]

OPTION_REQUESTS: list[tuple[str, dict[str, object] | None]] = [
    ("/recommendations/somebody-new?k=2&history=50,172,181&explain=true", None),  # GET: fold-in, explained
    ("/recommendations", {"user_ids": ["42"], "k": 3, "policies": {"mmr": 0.3, "max_per": {"genres": 1}}}),  # POST
]
OPTIONS_HEADING = "## Request options"


def help_text(args: list[str]) -> list[str]:
    """``two-stage-rec ARGS --help`` as the page shows it: 100 columns, no colour, no blank edges."""
    env = dict(os.environ, COLUMNS=HELP_WIDTH, TERM="dumb", NO_COLOR="1")
    program = "from two_stage_rec.cli import app; app(prog_name='two-stage-rec')"
    command = [sys.executable, "-c", program, *args, "--help"]
    text = subprocess.run(command, capture_output=True, text=True, env=env, check=True, timeout=120).stdout
    rows = [row.rstrip() for row in text.split("\n")]
    while rows and not rows[0]:
        rows.pop(0)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def help_blocks(lines: list[str]) -> list[tuple[list[str], int, int]]:
    """``(command args, first line, end line)`` of each help block of the CLI page (end: the closing fence)."""
    blocks: list[tuple[list[str], int, int]] = []
    pending: list[str] | None = []  # the top-level help comes before any heading
    for number, line in enumerate(lines):
        heading = HEADING.match(line)
        if heading:
            pending = heading.group(1).split()
        elif line == "```text" and pending is not None:
            end = lines.index("```", number + 1)
            if pending or lines[number + 1].startswith(" Usage: two-stage-rec [OPTIONS] COMMAND"):
                blocks.append((pending, number + 1, end))
            pending = None
    return blocks


def generate_cli() -> None:
    lines = CLI_PAGE.read_text(encoding="utf-8").split("\n")
    for args, start, end in reversed(help_blocks(lines)):
        lines[start:end] = help_text(args)
    CLI_PAGE.write_text("\n".join(lines), encoding="utf-8")


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _one_user(answer: dict[str, object], indent: str) -> str:
    items = answer["items"]
    assert isinstance(items, list)
    head = json.dumps({key: value for key, value in answer.items() if key != "items"}, ensure_ascii=False)[:-1]
    rows = [indent + "  " + json.dumps(_rounded(item), ensure_ascii=False) for item in items]
    return head + ', "items": [\n' + ",\n".join(rows) + "]}"


def compact(answer: dict[str, object]) -> str:
    """A service answer as valid JSON, one recommended item a line, floats rounded to 4 decimals."""
    if "results" in answer:
        results = answer["results"]
        assert isinstance(results, list)
        return '{"results": [\n' + ",\n".join("  " + _one_user(user, "  ") for user in results) + "]}"
    return _one_user(answer, "")


def service_answers(models: Path, requests: list[tuple[str, dict[str, object] | None]]) -> list[str]:
    """The example requests and their answers, as console lines."""
    from fastapi.testclient import TestClient

    from two_stage_rec.assembly import assemble
    from two_stage_rec.serving.app import create_bundle_app

    app = create_bundle_app(assemble(models, store="faiss"), path=models)  # what `serve` builds
    lines: list[str] = []
    with TestClient(app) as client:
        for path, body in requests:
            if body is None:
                lines.append(f'$ curl -s "localhost:8000{path}"')
                answer = client.get(path)
            else:
                lines.append(
                    f"$ curl -s -X POST localhost:8000{path} -H 'content-type: application/json' \\\n"
                    f"    -d '{json.dumps(body)}'"
                )
                answer = client.post(path, json=body)
            answer.raise_for_status()
            lines.append(compact(answer.json()))
            lines.append("")
    return lines[:-1]


def _replace_console_block(text: str, heading: str, lines: list[str]) -> str:
    """``text`` with the first ``console`` block after ``heading`` replaced by ``lines``."""
    start = text.index("```console\n", text.index(heading)) + len("```console\n")
    end = start - 1 if text.startswith("```", start) else text.index("\n```", start)  # an empty block
    return text[:start] + "\n".join(lines) + text[end:]


def generate_serving(models: Path) -> None:
    text = SERVING_PAGE.read_text(encoding="utf-8")
    text = _replace_console_block(text, "## From the command line", service_answers(models, SERVING_REQUESTS))
    text = _replace_console_block(text, OPTIONS_HEADING, service_answers(models, OPTION_REQUESTS))
    SERVING_PAGE.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["cli", "serving"])
    parser.add_argument("--models", type=Path, default=Path("models"), help="the bundle the service example serves")
    args = parser.parse_args()
    if args.what == "cli":
        generate_cli()
    else:
        generate_serving(args.models)


if __name__ == "__main__":
    main()
