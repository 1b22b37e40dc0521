"""The daemon as a user gets it from `pip install .`: a fresh venv with the checkout installed
(bytecode compiled by pip, as for any user), run as `<venv>/bin/python -I -m bridge`
(`-I`: nothing from this checkout or the sandbox's PYTHON* variables, e.g. its
PYTHONDONTWRITEBYTECODE). Offline: the venv reads the dependencies from the bench's own
environment through a `.pth` file, and the build backend (setuptools ≥ 77, which this
environment's 65.5 is not) comes from a local wheel directory when one is given
(`--find-links`, default /opt/pypi/files where present) — otherwise from the index.

`python -m bench startup --installed` and `python -m bench relay --installed` use it.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from bench import common as C

WHEELS = Path("/opt/pypi/files")


def make_venv(tmp: Path, find_links: Path | None = WHEELS) -> Path:
    """Creates `tmp/venv`, pip-installs the checkout into it; returns its python."""
    root = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(root)
    py = root / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The bench environment's packages (pydantic, anyio…) after the venv's own: the installed
    # `bridge` is found first, the dependencies are the ones the tests run with.
    (Path(purelib) / "bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    links = ["--no-index", "--find-links", str(find_links)] if find_links and find_links.is_dir() else []
    subprocess.run([*pip, *links, "setuptools>=77"], check=True)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", str(C.ROOT)], check=True)
    check = subprocess.run(
        [py, "-I", "-c", "import bridge, sys; print(bridge.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    if not check.stdout.startswith(str(root)):
        sys.exit(f"bench: the venv imports bridge from {check.stdout.strip()}, not from itself")
    return py


def head(py: Path) -> list[str]:
    """The start of an argv that runs the installed daemon."""
    return [str(py), "-I", "-m", "bridge"]
