"""The pages a user reads: README.md gives the test command CI runs and stays a short page, every
relative link in the pages points to a file (and heading) that exists, and experiments/README.md
lists every script in experiments/."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "experiments" / "README.md", ROOT / "experiments" / "RESULTS.md",
         *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_readme_gives_the_test_command_ci_runs_and_is_a_short_page():
    readme = (ROOT / "README.md").read_text()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] == "python -m pytest -q"
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert any(ci[-1] in block.splitlines() for block in blocks)
    assert len(readme.splitlines()) <= 250


def test_every_relative_link_points_to_a_file_and_heading_that_exist():
    assert len(PAGES) >= 6
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.relative_to(ROOT)}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{page.relative_to(ROOT)}: {target}"


def test_experiments_readme_lists_every_script():
    listed = (ROOT / "experiments" / "README.md").read_text()
    scripts = sorted(p.name for p in (ROOT / "experiments").iterdir() if p.suffix in (".py", ".sh"))
    assert scripts and [s for s in scripts if f"`{s}" not in listed] == []
