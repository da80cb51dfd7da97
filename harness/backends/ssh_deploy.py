"""Ship the project to a node host: build a wheel here, copy it, install it into a venv there.

Rules this module keeps:

- `build_wheel` writes a pure-Python wheel (py3-none-any, with METADATA,
  WHEEL and a RECORD of sha256 hashes) of the project's packages straight
  from the source tree, with the standard library only: no build step that
  writes into the repository, no network.
- On the host, the venv is `<data_dir>/venv` (made with `python -m venv
  --without-pip --system-site-packages` once, reused after); installing a
  pure wheel is unpacking it into the venv's purelib, which is what an
  installer does for such a wheel, so no pip and no index are needed. The
  previous copy of our packages is removed first (no stale modules).
- msgpack, the systems' one dependency, is taken from the host when it has
  it (system site-packages); otherwise this machine's msgpack package is
  copied over without its compiled extension (msgpack then uses its own
  pure-Python fallback, which reads and writes the same bytes).
- Every remote command goes through Remote (shlex-quoted).
"""

from __future__ import annotations

import base64
import hashlib
import io
import tempfile
import zipfile
from pathlib import Path

import msgpack

import systems
from harness.backends.ssh_remote import Remote, script

REPO_ROOT = Path(systems.__file__).resolve().parent.parent
PACKAGES = ("base", "systems", "harness", "nemesis", "checkers", "workloads")
NAME, VERSION = "picluster", "0.1.0"
MIN_PYTHON = (3, 11)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def project_files(root: Path = REPO_ROOT) -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        base = root / pkg
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            out.append((path.relative_to(root).as_posix(), path))
    return out


def build_wheel(out_dir: Path, root: Path = REPO_ROOT) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    dist_info = f"{NAME}-{VERSION}.dist-info"
    wheel = out_dir / f"{NAME}-{VERSION}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, path in project_files(root):
            data = path.read_bytes()
            z.writestr(arc, data)
            records.append(_record_line(arc, data))
        meta = {
            "METADATA": f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\nRequires-Dist: msgpack>=1.0\n",
            "WHEEL": "Wheel-Version: 1.0\nGenerator: picluster-ssh-deploy\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        }
        for name, text in meta.items():
            data = text.encode()
            z.writestr(f"{dist_info}/{name}", data)
            records.append(_record_line(f"{dist_info}/{name}", data))
        records.append(f"{dist_info}/RECORD,,")
        z.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel


def msgpack_fallback_zip() -> bytes:
    """This machine's msgpack package without compiled extensions, as a zip to unpack into purelib."""
    base = Path(msgpack.__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" not in path.parts:
                z.writestr(f"msgpack/{path.relative_to(base).as_posix()}", path.read_bytes())
    return buf.getvalue()


UNZIP = "import sys, sysconfig, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sysconfig.get_paths()['purelib'])"
CLEAR = (
    "import os, shutil, sys, sysconfig\n"
    "lib = sysconfig.get_paths()['purelib']\n"
    "for name in sys.argv[1:]:\n"
    "    shutil.rmtree(os.path.join(lib, name), ignore_errors=True)\n"
)


def home_path(remote: Remote, path: str) -> str:
    """An absolute remote path: relative ones are under the login's home directory."""
    if path.startswith("/"):
        return path.rstrip("/") or "/"
    home = remote.run(["sh", "-c", 'printf %s "$HOME"']).out.strip()
    if path.startswith("~/"):
        path = path[2:]
    return f"{home.rstrip('/')}/{path}".rstrip("/")


def install(remote: Remote, wheel: Path, base: str) -> str:
    """Install the wheel into `<base>/venv` on the host; returns the venv's python."""
    h = remote.host
    venv = f"{base}/venv"
    py = f"{venv}/bin/python"
    version = remote.run([h.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).out.strip()
    major, minor = (int(x) for x in version.split("."))
    if (major, minor) < MIN_PYTHON:
        raise RuntimeError(f"{h.where}: {h.python} is Python {version}; picluster needs 3.11 or newer "
                           f"(set `python` in the cluster file)")
    remote.run(["mkdir", "-p", base])
    if remote.run(["test", "-x", py], check=False).rc != 0:
        remote.run([h.python, "-m", "venv", "--without-pip", "--system-site-packages", venv])
    target = f"{base}/{wheel.name}"
    remote.put(wheel, target)
    remote.run([py, "-c", CLEAR, *PACKAGES, f"{NAME}-{VERSION}.dist-info"])  # no stale modules of an older copy
    remote.run([py, "-c", UNZIP, target])
    if remote.run([py, "-c", "import msgpack"], check=False).rc != 0:
        with tempfile.TemporaryDirectory() as tmp:
            z = Path(tmp) / "msgpack-fallback.zip"
            z.write_bytes(msgpack_fallback_zip())
            remote.put(z, f"{base}/msgpack-fallback.zip")
        remote.run([py, "-c", UNZIP, f"{base}/msgpack-fallback.zip"])
    remote.sh(script("cd /tmp && {py} -c 'import msgpack, systems.runtime.node_main'", py=py))
    return py
