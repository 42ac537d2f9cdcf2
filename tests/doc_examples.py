"""Run the Python examples of one docs page, as a reader would, and check what they print.

Used by ``tests/test_docs.py`` in a subprocess (so an example that blocks or
leaks state cannot hang or taint the test session)::

    python tests/doc_examples.py docs/guides/filters.md

A page's ```python blocks run in order in one namespace, in the current
directory. A block immediately followed (after one blank line) by a ```text
block must print exactly that text. A block preceded by the line
``<!-- skip-test: reason -->`` is not run; the reason is on the page.
Exit status 0 means every example ran and printed what the page shows.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import traceback
from pathlib import Path

EXAMPLE = re.compile(
    r"^(?:<!-- skip-test: (?P<skip>[^\n]*?) -->\n)?```python\n(?P<code>.*?)^```\n"
    r"(?:\n```text\n(?P<output>.*?)^```\n)?",
    re.MULTILINE | re.DOTALL,
)


def examples(text: str) -> list[re.Match[str]]:
    return list(EXAMPLE.finditer(text))


def main(page: Path) -> int:
    text = page.read_text("utf-8")
    found = examples(text)
    if len(found) != text.count("```python"):
        print(f"{page}: a ```python block is not closed by a lone ``` line", file=sys.stderr)
        return 2
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for number, example in enumerate(found, start=1):
        if example["skip"] is not None:
            continue
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(example["code"], f"{page.name} example {number}", "exec"), namespace)
        except BaseException:
            print(f"{page.name} example {number} raised:\n{traceback.format_exc()}", file=sys.stderr)
            return 1
        if example["output"] is not None and printed.getvalue() != example["output"]:
            print(
                f"{page.name} example {number} printed:\n{printed.getvalue()}\nbut the page shows:\n"
                f"{example['output']}",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
