"""`edgeprune bundle [--arch aarch64] [-o DIR]`: the self-contained device bundle a device
without Python (a stock Android phone) runs the runner with.

Built once from package-registry artifacts (an arm64 Debian python3.11-minimal userland
unpacked by mmdebstrap, and the aarch64 wheels of numpy, onnxruntime and the TVM runtime at
this host's versions) into the user cache, `bundles/<arch>-<key>`, and reused; `-o DIR` gets a
copy. Point a profile's `[reach] bundle` or EDGEPRUNE_DEVICE_BUNDLE at it: adb devices push it
once to their work folder and start Python through its own loader.
"""

from __future__ import annotations

import json

import click


@click.command("bundle")
@click.option("--arch", default="aarch64", show_default=True, metavar="ARCH",
              help="The devices' architecture (aarch64: phones and ARM boards).")
@click.option("-o", "--output", default=None, metavar="DIR",
              help="Copy the bundle to DIR (default: only print where it is in the cache).")
def command(arch, output):
    """Build (once) the device bundle for devices without Python and print its folder."""
    from ..devices.bundle_build import arch_named, check_output, copy_bundle, ensure_bundle

    arch_named(arch)                     # an unknown --arch is refused before anything else
    out = check_output(output) if output else None

    def building(where):
        click.echo(f"building the {arch} device bundle (once; cached in {where})", err=True)

    path = ensure_bundle(arch, on_build=building)
    if out is not None:
        path = copy_bundle(path, out)
    info = json.loads((path / "edgeprune-bundle.json").read_text())
    click.echo(f"{info['arch']} bundle: Python {info['python']} ({info['suite']}), "
               f"{', '.join(info['wheels'])}", err=True)
    click.echo(str(path))
