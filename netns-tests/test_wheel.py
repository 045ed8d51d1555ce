"""The wheel works on its own: ``python -m build``, a fresh venv, no checkout on the path.

The editable install every other test uses hides packaging mistakes (a subpackage left out
of ``packages.find``, a data file read from the source tree, a dependency only the dev venv
has).  Here the package is built from a copy of the files a release contains (pyproject,
README, pyvrrp/) into a wheel and an sdist, the wheel is installed into a new venv without
system site-packages, and the installed ``pyvrrp`` is run from a directory outside the
checkout with PYTHONPATH removed: ``--version``, ``check-config`` on a shipped example,
and a short failover in the lab (two installed daemons, kill -9 the master, the backup
takes over).  ~25 s, most of it pip resolving the dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _daemon_helpers import v3, wait_view

from pyvrrp import __version__
from pyvrrp.lab.topology import VIP4, InstanceSpec, Lab, PyvrrpNode

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    venv: Path
    outside: Path  # a working directory outside the checkout

    @property
    def pyvrrp(self) -> Path:
        return self.venv / "bin" / "pyvrrp"


def clean_env() -> dict[str, str]:
    """The environment without anything that would put the checkout on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "pyvrrp", src / "pyvrrp", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = base / "dist"
    # Default `python -m build`: the sdist, then the wheel built from that sdist.
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(src)], cwd=base)
    [wheel] = dist.glob("pyvrrp-*.whl")
    [sdist] = dist.glob("pyvrrp-*.tar.gz")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=base)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=base)
    outside = base / "elsewhere"
    outside.mkdir()
    yield Installed(wheel, sdist, venv, outside)


def test_wheel_and_sdist_hold_the_whole_package(installed: Installed) -> None:
    """Every module and data file of pyvrrp/ is in the wheel (and the sdist), none from elsewhere."""
    package = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "pyvrrp").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert "pyvrrp/py.typed" in package
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert package - names == set(), "missing from the wheel"
    assert {n for n in names if not n.startswith(("pyvrrp/", "pyvrrp-"))} == set()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pyvrrp = pyvrrp.cli.app:main" in zipfile.ZipFile(installed.wheel).read(entry_points).decode()
    with tarfile.open(installed.sdist) as tar:
        top = f"pyvrrp-{__version__}/"
        in_sdist = {m.name.removeprefix(top) for m in tar.getmembers()}
    assert package - in_sdist == set(), "missing from the sdist"


def test_installed_pyvrrp_runs_without_the_checkout(installed: Installed) -> None:
    py = str(installed.venv / "bin" / "python")
    where = _run([py, "-c", "import pyvrrp, sys; print(pyvrrp.__file__); print(sys.path)"], installed.outside)
    module_file = where.stdout.splitlines()[0]
    assert module_file.startswith(str(installed.venv)), where.stdout
    assert str(REPO) not in where.stdout
    # the fresh venv has the declared dependencies and nothing of the dev venv's
    has_pytest = subprocess.run(
        [py, "-c", "import pytest"], env=clean_env(), capture_output=True, check=False
    )
    assert has_pytest.returncode != 0, "the fresh venv sees the dev venv's packages"

    version = _run([str(installed.pyvrrp), "--version"], installed.outside)
    assert version.stdout.strip() == f"pyvrrp {__version__}"
    sample = installed.outside / "lvs-dr.toml"
    shutil.copy2(REPO / "conf" / "examples" / "lvs-dr.toml", sample)
    checked = _run([str(installed.pyvrrp), "check-config", "-f", sample.name], installed.outside)
    assert f"{sample.name}: OK (TOML)" in checked.stdout, checked.stdout


class InstalledNode(PyvrrpNode):
    """``pyvrrp run`` from the fresh venv's console script, without the checkout on the path."""

    def __init__(self, lab: Lab, host: str, script: Path, spec: InstanceSpec) -> None:
        super().__init__(lab, host, instances=[spec])
        self.script = script

    def argv(self) -> list[str]:
        return [str(self.script), "run", "-f", str(self.config_path), "--socket", str(self.socket_path)]

    def env(self) -> dict[str, str]:
        return {**clean_env(), "TMPDIR": str(self.dir), "PYTHONUNBUFFERED": "1"}


def test_installed_pyvrrp_fails_over(installed: Installed, lab: Lab) -> None:
    """Two installed daemons: kill -9 the master, the backup takes the VIP (Master_Down ~0.35 s)."""
    master = InstalledNode(lab, "lb1", installed.pyvrrp, v3(150))
    backup = InstalledNode(lab, "lb2", installed.pyvrrp, v3(100))
    master.start()
    master.wait_state("MASTER", 15)
    backup.start()
    backup.wait_state("BACKUP", 15)
    wait_view(backup, lambda v: v["master_ip"] is not None, 10, what="lb2 hears lb1")
    assert lab.holds_vip("lb1") and not lab.holds_vip("lb2")
    master.kill9()
    took_s = backup.wait_state("MASTER", 5)
    assert lab.holds_vip("lb2", VIP4)
    assert took_s < 3.0
    assert master.proc is not None and master.proc.returncode is not None
    backup.stop()
    assert backup.proc is not None and backup.proc.returncode == 0, backup.log_text()[-2000:]
    assert not lab.holds_vip("lb2")
