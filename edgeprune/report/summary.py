"""report.md for a reader who cannot open the artifact's files: a GitHub job summary.

GitHub renders Markdown through a sanitizer that keeps an image only when its source is an
`http(s)` URL (or a path relative to a file in a repository): a `data:` URI or inline SVG is
stripped, and a relative `plots/x.png` in a job summary points nowhere. So the plots cannot be
embedded; they are uploaded where a browser can fetch them (the README's release workflow
attaches them to the release) and the summary links them there (`image_base`). Without an
`image_base` each plot is named as a file of the artifact instead of shown as a broken image.

report.md itself, inside the artifact folder, keeps relative links: they resolve there, and
wherever the folder is committed to a repository.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UsageError

# the images report/markdown.py writes: ![title](plots/NAME.png)
IMAGE = re.compile(r"!\[(?P<alt>[^\]\n]*)\]\((?P<src>[^)\s]+)\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def check_image_base(url: str) -> str:
    if not re.match(r"^https?://[^\s/]+", url or ""):
        raise UsageError(f"--image-base {url!r}: expected an http(s) URL (GitHub shows no other images)")
    return url.rstrip("/")


def summary_markdown(outdir: str | Path, image_base: str | None = None) -> str:
    """OUTDIR's report.md with each plot linked at `image_base`/NAME, or named as a file."""
    root = Path(outdir)
    report = root / "report.md"
    if not report.is_file():
        raise UsageError(f"{root}: no report.md (not an edgeprune artifact folder, or the compile failed early)")
    base = check_image_base(image_base) if image_base is not None else None
    text = report.read_text()

    def link(m: re.Match) -> str:
        alt, src = m["alt"], m["src"]
        if _SCHEME.match(src):
            return m[0]
        if not (root / src).is_file():
            raise UsageError(f"{root}: report.md shows {src}, which is not in the artifact")
        if base is not None:
            return f"![{alt}]({base}/{Path(src).name})"
        return f"*{alt}: `{src}` in the artifact*"

    return IMAGE.sub(link, text)


def plot_files(outdir: str | Path) -> list[Path]:
    """The images report.md shows, in order (what a workflow uploads for the summary)."""
    root = Path(outdir)
    return [root / m["src"] for m in IMAGE.finditer((root / "report.md").read_text())
            if not _SCHEME.match(m["src"])]
