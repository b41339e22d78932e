"""The package's layers (../shared/DESIGN.md) hold: `lint-imports` checks the contracts in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "chatgen").rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these modules: {long}"
