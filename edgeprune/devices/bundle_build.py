"""Builds the aarch64 device bundle (devices/bundle.py reads it) and, on top of it, the arm64
root filesystem the tests' emulation runs in: one implementation for both.

The bundle is an arm64 Debian userland unpacked with `mmdebstrap --variant=extract` (a
minimal Python 3.11, its standard library, libstdc++, libgomp, zlib and glibc with its loader
`lib/aarch64-linux-gnu/ld-linux-aarch64.so.1`) plus the aarch64 cp311 wheels of numpy,
onnxruntime and the TVM runtime at the versions installed on this host (a model or TVM library
built here must load there), in `usr/local/lib/python3.11/dist-packages`. It is made to be
copied somewhere else: no device nodes, no absolute symbolic links, no documentation, and
nothing for a particular host (no qemu binary, no fake /proc/cpuinfo).

It is kept in the user cache, `bundles/<key>`, the key hashing the recipe, the Debian suite
and packages and the wheel versions. A build happens in a temporary folder beside it and is
renamed into place when finished, under a lock: a cut build never looks complete, and two
builds at once do not collide. The aarch64 wheels are kept in the cache's `wheels/` and are
looked for there (and in the emulation's older `emulation/wheels/`) before anything is
downloaded.

The emulation root filesystem (`emulation/rootfs-<key>`) is the bundle, hard-linked, plus what
only a chroot under qemu-user needs: the qemu binary, an aarch64 /proc/cpuinfo and CPU lists
(qemu 7.2 shows the guest the host's x86 cpuinfo, on which onnxruntime crashes), a python3
link and a /work folder. runtimes/emulation/build_rootfs.sh is a thin wrapper around
`python -m edgeprune.devices.bundle_build emulation`.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

from .. import locations
from ..errors import DeviceError, UsageError, first_line
from .bundle import LIBRARY_DIRS, LOADER, open_bundle

RECIPE = 1                 # bump when what a build puts in the bundle changes
SUITE = "bookworm"         # its python3.11 matches the cp311 wheels
PYTHON = "3.11"
DEB_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgomp1", "libgcc-s1", "zlib1g")
WHEELS = ("numpy", "onnxruntime", "apache-tvm", "apache-tvm-ffi", "ml_dtypes", "typing_extensions")
# unneeded on a device, and the bulk of a Debian userland after the libraries
PRUNED = ("dev", "proc", "sys", "run", "tmp", "var/cache", "var/log", "usr/share/doc", "usr/share/man",
          "usr/share/info", "usr/share/locale", "usr/share/lintian")
EMULATION_RECIPE = 2
# what an emulated board serving TVM RPC needs beyond the bundle (tvm.rpc.server hands its
# sessions to a fresh Python through tvm.support.popen_pool, which pickles with it)
EMULATION_WHEELS = ("cloudpickle",)
MANIFEST = "edgeprune-bundle.json"


@dataclass(frozen=True)
class Arch:
    name: str            # as `uname -m` says it
    debian: str          # Debian's architecture name
    platforms: tuple[str, ...]   # pip --platform tags of its wheels


ARCHES = {"aarch64": Arch("aarch64", "arm64",
                          ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_17_aarch64"))}


def arch_named(name: str) -> Arch:
    key = {"arm64": "aarch64"}.get(name, name)
    if key not in ARCHES:
        raise UsageError(f"--arch {name}: no device bundle for it (known: {', '.join(sorted(ARCHES))})")
    return ARCHES[key]


def host_pins() -> list[str]:
    """`name==version` of every wheel the bundle carries, at the versions installed here."""
    pins = []
    for name in WHEELS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            raise UsageError(f"{name} is not installed on this host: the device bundle carries the "
                             "host's version of it (pip install edgeprune's dependencies first)") from None
    return pins


def bundle_key(arch: Arch, pins: list[str]) -> str:
    desc = {"recipe": RECIPE, "arch": arch.debian, "suite": SUITE, "python": PYTHON,
            "debs": list(DEB_PACKAGES), "wheels": sorted(pins)}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


def bundles_dir() -> Path:
    return locations.cache_dir() / "bundles"


def wheel_dirs() -> list[Path]:
    """Where aarch64 wheels are kept (first: where new downloads go)."""
    cache = locations.cache_dir()
    return [cache / "wheels", cache / "emulation" / "wheels"]


def _log(msg: str) -> None:
    print(f"bundle: {msg}", file=sys.stderr, flush=True)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / ".lock", "w")
    except OSError as e:
        raise UsageError(f"cache folder {folder}: cannot be written ({e.strerror}); "
                         "choose another with --cache-dir") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def mmdebstrap_mode() -> str:
    """How mmdebstrap may unpack here: as root directly; otherwise in a user namespace
    (unshare), else under fakechroot."""
    if not shutil.which("mmdebstrap"):
        raise DeviceError("building a device bundle needs mmdebstrap (Debian/Ubuntu: "
                          "apt-get install mmdebstrap arch-test)")
    if os.geteuid() == 0:
        return "root"
    # unshare mode maps a range of ids (newuidmap, from Debian's uidmap, and /etc/subuid)
    if shutil.which("unshare") and shutil.which("newuidmap") and shutil.which("newgidmap"):
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True)
        if probe.returncode == 0:
            return "unshare"
    if shutil.which("fakechroot") and shutil.which("fakeroot"):
        return "fakechroot"
    raise DeviceError("mmdebstrap cannot unpack here without root: no user namespaces with "
                      "newuidmap (apt-get install uidmap) and no fakechroot (apt-get install "
                      "fakechroot fakeroot); or run as root")


def _run(argv: list[str], what: str, timeout: float = 1800, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"{what} timed out after {timeout:.0f} s") from None
    except OSError as e:
        raise DeviceError(f"{what}: {e}") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout or "").strip().splitlines() if ln.strip()]
        raise DeviceError(f"{what} failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}")
    return proc


def unpack_userland(root: Path, arch: Arch) -> None:
    """The Debian packages unpacked into `root` (which must not exist yet), without running
    their maintainer scripts (so nothing arm64 runs here)."""
    mode = mmdebstrap_mode()
    _log(f"unpacking arm64 {SUITE} ({mode} mode) into {root}")
    _run(["mmdebstrap", "--quiet", f"--mode={mode}", f"--arch={arch.debian}", "--variant=extract",
          f"--include={','.join(DEB_PACKAGES)}",
          SUITE, str(root)], "mmdebstrap")


def _platform_flags(arch: Arch) -> list[str]:
    """pip's flags for the device's wheels (binary only: nothing is compiled here)."""
    return ["--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
            *(f for p in arch.platforms for f in ("--platform", p))]


def _need_pip() -> None:
    if importlib.util.find_spec("pip") is None:
        raise DeviceError(f"building a device bundle needs pip in edgeprune's Python ({sys.executable} -m pip): "
                          "it fetches the aarch64 wheels")


def fetch_wheels(pins: list[str], arch: Arch) -> Path:
    """The aarch64 wheels of `pins` in the cache's wheel folder: taken from the folders that
    already hold them, downloaded only when missing. Returns the folder."""
    _need_pip()
    dest, *others = wheel_dirs()
    dest.mkdir(parents=True, exist_ok=True)
    flags = _platform_flags(arch)
    links = [f for d in (dest, *others) if d.is_dir() for f in ("--find-links", str(d))]
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *flags, "-d", str(dest)]
    offline = subprocess.run([*base, "--no-index", *links, *pins], capture_output=True, text=True)
    if offline.returncode != 0:
        _log(f"downloading aarch64 wheels {' '.join(pins)}")
        _run([*base, *pins], "pip download of the aarch64 wheels", timeout=3600)
    return dest


def install_wheels(root: Path, pins: list[str], arch: Arch, wheels: Path) -> None:
    flags = _platform_flags(arch)
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--find-links",
          str(wheels), *flags, "--target", str(root / f"usr/local/lib/python{PYTHON}/dist-packages"), *pins],
         "pip install of the aarch64 wheels into the bundle")


def make_portable(root: Path) -> None:
    """Drop what a device does not need, and make every absolute symbolic link relative
    within the bundle (or remove it when its target is not in the bundle): on a device, or
    under qemu without a chroot, an absolute link would point at the host's files."""
    for rel in PRUNED:
        path = root / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                continue
            target = os.readlink(path)
            if not target.startswith("/"):
                continue
            inside = root / target.lstrip("/")
            path.unlink()
            if inside.exists() or inside.is_symlink():
                path.symlink_to(os.path.relpath(inside, path.parent))


def precompile(root: Path) -> None:
    """The standard library compiled to .pyc (the extract variant runs no postinst, which is
    where Debian compiles it), so a device does not recompile it at every start. Hash-based
    and unchecked: valid whatever modification times a push leaves. Only a host Python of the
    bundle's version writes .pyc the bundle's reads."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != PYTHON:
        return
    # a file that does not compile (a test fixture) is left as source: not an error
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    "-d", f"/usr/lib/python{PYTHON}", str(root / f"usr/lib/python{PYTHON}")],
                   capture_output=True, timeout=900)


def qemu_program() -> str | None:
    for name in ("qemu-aarch64-static", "qemu-aarch64"):
        if shutil.which(name):
            return shutil.which(name)
    return None


SMOKE = ("import json, platform, sys, numpy; "
         "print(json.dumps([platform.machine(), sys.prefix, numpy.__file__, numpy.__version__]))")


def run_under_qemu(root: Path, args: list[str], *, timeout: float = 600,
                   cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """The bundle's Python, started through its own loader under qemu-user, exactly as a
    device starts it (no chroot, no -L: nothing is looked up outside the bundle)."""
    qemu = qemu_program()
    if qemu is None:
        raise DeviceError("running an aarch64 bundle here needs qemu-user (apt-get install qemu-user-static)")
    argv, env = open_bundle(root).launcher(str(root))
    return subprocess.run([qemu, *argv, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={"QEMU_CPU": "neoverse-n1", "PATH": "/usr/bin:/bin", **env})


def smoke_test(root: Path) -> str:
    """numpy imports in the bundle under qemu (when qemu is here): what it printed, or why it
    was not run. onnxruntime is not imported: under qemu 7.2 without a chroot it reads the
    host's x86 /proc/cpuinfo and crashes (the emulation root filesystem checks it)."""
    if qemu_program() is None:
        return "not run (no qemu-aarch64 here)"
    proc = run_under_qemu(root, ["-c", SMOKE])
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeviceError(f"the built bundle's Python did not start under qemu: {tail}")
    machine, _, _, numpy_version = json.loads(proc.stdout.strip().splitlines()[-1])
    if machine != "aarch64":
        raise DeviceError(f"the built bundle's Python runs as {machine}, not aarch64")
    return f"numpy {numpy_version} imports on aarch64 under qemu"


def build(root: Path, arch: Arch, pins: list[str], key: str) -> None:
    """Everything of a bundle into `root` (a fresh folder)."""
    unpack_userland(root, arch)
    wheels = fetch_wheels(pins, arch)
    _log(f"installing {' '.join(pins)}")
    install_wheels(root, pins, arch, wheels)
    make_portable(root)
    precompile(root)
    checked = smoke_test(root)
    (root / MANIFEST).write_text(json.dumps(
        {"key": key, "recipe": RECIPE, "arch": arch.name, "suite": SUITE, "python": PYTHON,
         "wheels": sorted(pins), "debs": list(DEB_PACKAGES), "loader": LOADER, "library_dirs": list(LIBRARY_DIRS),
         "smoke_test": checked}, indent=2) + "\n")


def _fresh_tmp(folder: Path, key: str) -> Path:
    """A temporary build folder in `folder`, after removing cut builds left there (the caller
    holds the lock, so nobody else is building)."""
    for stale in folder.glob(".building-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return folder / f".building-{key}-{os.getpid()}"


def ensure_bundle(arch_name: str = "aarch64", *, on_build: Callable[[str], None] | None = None) -> Path:
    """The cached bundle for `arch_name`, built first when missing. Returns its folder."""
    arch = arch_named(arch_name)
    pins = host_pins()
    key = bundle_key(arch, pins)
    folder = bundles_dir()
    done = folder / f"{arch.name}-{key}"
    if (done / MANIFEST).is_file():
        return done
    mmdebstrap_mode()   # before anything is made: a missing tool is one line
    _need_pip()
    with _locked(folder):
        if (done / MANIFEST).is_file():
            return done
        tmp = _fresh_tmp(folder, key)
        if on_build:
            on_build(str(done))
        started = time.monotonic()
        try:
            build(tmp, arch, pins, key)
            shutil.rmtree(done, ignore_errors=True)   # not a bundle (no manifest): never ours to keep
            os.rename(tmp, done)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _log(f"built {done} in {time.monotonic() - started:.0f} s")
        return done


def check_output(path: str | os.PathLike) -> Path:
    """Refuse, before any build, a -o folder that cannot or should not receive a bundle."""
    out = Path(path).absolute()
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {path}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UsageError(f"-o {path}: exists, is not empty and is not a device bundle (no {MANIFEST}); "
                         "remove it or choose another folder")
    above = next(p for p in out.parents if p.exists())
    if not above.is_dir():
        raise UsageError(f"-o {path}: {above} is not a folder")
    try:   # nothing is left behind: the folders above DIR are made only when the copy is
        probe = above / f".{out.name}.edgeprune-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        raise UsageError(f"-o {path}: cannot be written ({e.strerror})") from None
    return out


def copy_bundle(src: Path, out: Path) -> Path:
    """A copy of the bundle `src` at `out`, put in place only when complete (a staging folder
    beside it, then renames); an older bundle at `out` is replaced, the same one left alone."""
    have = out / MANIFEST
    if have.is_file() and have.read_text() == (src / MANIFEST).read_text():
        return out
    for stale in out.parent.glob(f".{out.name}.edgeprune-bundle-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    staging = out.parent / f".{out.name}.edgeprune-bundle-{os.getpid()}"
    old = out.parent / f".{out.name}.edgeprune-bundle-old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # the manifest last: a copy cut short has none, so it is never taken for a bundle
        shutil.copytree(src, staging, symlinks=True, ignore=lambda d, names: [MANIFEST] if Path(d) == src else [])
        shutil.copy2(src / MANIFEST, staging / MANIFEST)
        if out.exists():
            os.rename(out, old)
        os.rename(staging, out)
    except OSError as e:
        raise UsageError(f"-o {out}: cannot be written ({e.strerror or first_line(e)})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def _link_tree(src: Path, dst: Path) -> None:
    """A copy of `src` whose files are hard links (a copy where linking is not possible)."""
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dst, symlinks=True, copy_function=link)


def ensure_emulation_root(cpuinfo: Path | None = None) -> Path:
    """The arm64 root filesystem the emulation chroots into: the bundle plus qemu, an aarch64
    /proc/cpuinfo and CPU lists. Checked by importing numpy, onnxruntime and tvm in it."""
    bundle = ensure_bundle("aarch64")
    cpuinfo = cpuinfo or locations.runtimes_dir() / "emulation" / "cpuinfo.aarch64"
    text = cpuinfo.read_text()
    extra = [f"{name}=={metadata.version(name)}" for name in EMULATION_WHEELS]
    key = hashlib.sha256(json.dumps([EMULATION_RECIPE, bundle.name, text, extra]).encode()).hexdigest()[:16]
    folder = locations.cache_dir() / "emulation"
    done = folder / f"rootfs-{key}"
    if (done / ".edgeprune-complete").exists():
        return done
    qemu = shutil.which("qemu-aarch64-static")
    if qemu is None:
        raise DeviceError("the emulation root filesystem needs qemu-aarch64-static "
                          "(runtimes/emulation/host_tools.sh installs it)")
    with _locked(folder):
        if (done / ".edgeprune-complete").exists():
            return done
        tmp = _fresh_tmp(folder, key)
        try:
            _link_tree(bundle, tmp)
            install_wheels(tmp, extra, ARCHES["aarch64"], fetch_wheels(extra, ARCHES["aarch64"]))
            # /proc and /sys are not mounted in the chroot: these files are what it reads
            (tmp / "proc").mkdir()
            (tmp / "proc/cpuinfo").write_text(text)
            cpus = tmp / "sys/devices/system/cpu"
            cpus.mkdir(parents=True)
            ncpu = sum(1 for ln in text.splitlines() if ln.startswith("processor"))
            for name in ("possible", "present", "online"):
                (cpus / name).write_text(f"0-{ncpu - 1}\n")
            shutil.copy2(qemu, tmp / "usr/bin/qemu-aarch64-static")
            (tmp / "usr/bin/python3").symlink_to(f"python{PYTHON}")
            (tmp / "work").mkdir()
            _run(["chroot", str(tmp), "/usr/bin/qemu-aarch64-static", f"/usr/bin/python{PYTHON}", "-c",
                  "import numpy, onnxruntime, tvm, platform; assert platform.machine() == 'aarch64'"],
                 "the emulation root filesystem's smoke test", timeout=900,
                 env={**os.environ, "QEMU_CPU": "neoverse-n1"})
            (tmp / ".edgeprune-complete").touch()
            shutil.rmtree(done, ignore_errors=True)
            os.rename(tmp, done)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return done


def main(argv: list[str]) -> int:
    """`python -m edgeprune.devices.bundle_build bundle|emulation`: build (or find) it and
    print its folder on stdout (the emulation scripts call this)."""
    if argv not in (["bundle"], ["emulation"]):
        print("usage: python -m edgeprune.devices.bundle_build bundle|emulation", file=sys.stderr)
        return 2
    try:
        path = ensure_bundle() if argv == ["bundle"] else ensure_emulation_root()
    except (UsageError, DeviceError) as e:
        print(f"bundle_build: {e}", file=sys.stderr)
        return e.exit_code
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
