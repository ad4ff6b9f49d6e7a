"""The README set-up commands stay true: CI runs the first verbatim; the second names real files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    block = re.search(
        r"## Set up and run\n+```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S
    )
    assert block, "README lacks the 'Set up and run' bash block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_has_two_commands_and_ci_runs_the_first() -> None:
    install_and_test, main_job = setup_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci_lines
    assert "pytest" in install_and_test


def test_main_job_names_existing_files() -> None:
    main_job = setup_commands()[1]
    for word in main_job.split():
        if word.endswith((".py", ".yaml")):
            assert (ROOT / word).exists(), word


def test_readme_result_rows_are_quoted_from_the_committed_tables() -> None:
    """Every table row of the README's Results section is a row of a committed ``results.md``
    (which ``tests/test_committed_results.py`` remakes from the committed runs)."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"\n## Results\n(.*?)\n## ", readme, re.S)
    assert section, "README lacks a Results section"
    committed = {
        line
        for path in (ROOT / "results").glob("**/results.md")
        for line in path.read_text().splitlines()
    }
    rows = [
        line
        for line in section.group(1).splitlines()
        if line.startswith("| ") and re.search(r"\d\.\d{4}", line)
    ]
    assert rows, "the Results section quotes no table row"
    assert [row for row in rows if row not in committed] == []


def test_readme_ablation_rows_are_quoted_from_the_committed_table() -> None:
    """The ablation section's rows are ``results/ablation-ml1m-mf/table.md``'s (which
    ``tests/test_ablation.py`` remakes from the committed runs)."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"\n### What each deviation changes \(ablation\)\n(.*?)\n## ", readme, re.S)
    assert section, "README lacks the ablation section"
    table = (ROOT / "results" / "ablation-ml1m-mf" / "table.md").read_text().splitlines()
    rows = [line for line in section.group(1).splitlines() if line.startswith("|")]
    assert rows == table
