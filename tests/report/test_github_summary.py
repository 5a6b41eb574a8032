"""report.md renders with its pictures: parsed the way GitHub parses Markdown (CommonMark plus
GFM tables, markdown-it-py) and put through GitHub's rule for images (a source survives
sanitizing only as an http(s) URL or a relative path; `data:` URIs and inline SVG are
stripped), every image must resolve: in the artifact folder for report.md itself, at the
uploaded URL for the job-summary form (`edgeprune report OUTDIR --image-base URL`)."""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt

from edgeprune.cli import main
from tests.pipeline.fixtures import compiled, setup  # noqa: F401

BASE = "https://github.com/your-org/models/releases/download/v1.2.0"


def github_images(text: str) -> list[str | None]:
    """The source of every image GitHub would show (None: an image whose source GitHub's
    sanitizer strips, i.e. shown broken). Raw HTML images count too."""
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    found: list[str | None] = []

    def walk(tokens):
        for t in tokens:
            if t.type == "image":
                found.append(t.attrGet("src"))
            if t.type in ("html_inline", "html_block"):
                if re.search(r"<svg\b", t.content, re.I):
                    found.append(None)           # GitHub drops inline SVG
                for src in re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", t.content, re.I):
                    found.append(src)
            if t.children:
                walk(t.children)

    walk(md.parse(text))
    return [src if src is not None and _allowed(src) else None for src in found]


def _allowed(src: str) -> bool:
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", src)
    return scheme is None or scheme[1].lower() in ("http", "https")


def test_githubs_rule_strips_data_uris_and_keeps_http_and_relative_sources():
    text = "![a](data:image/png;base64,iVBORw0KGgo=)\n\n![b](plots/x.png)\n\n![c](https://x.org/c.png)\n\n<svg></svg>\n"
    assert github_images(text) == [None, "plots/x.png", "https://x.org/c.png", None]


def test_report_md_shows_every_plot_from_the_artifact_folder(compiled):
    images = github_images((compiled / "report.md").read_text())
    plots = sorted(p.name for p in (compiled / "plots").glob("*.png"))
    assert images and None not in images
    for src in images:
        assert not re.match(r"^[a-z]+:", src) and (compiled / src).is_file()
    assert sorted(Path(s).name for s in images) == plots


def test_the_job_summary_shows_every_plot_from_where_it_was_uploaded(compiled, capsys):
    assert main(["report", str(compiled), "--image-base", BASE + "/"]) == 0
    text = capsys.readouterr().out
    images = github_images(text)
    plots = sorted(p.name for p in (compiled / "plots").glob("*.png"))
    assert sorted(Path(s).name for s in images) == plots
    assert all(s.startswith(BASE + "/") and s.count("/") == BASE.count("/") + 1 for s in images)
    assert text.splitlines()[0] == (compiled / "report.md").read_text().splitlines()[0]
    assert main(["report", str(compiled), "--list-plots"]) == 0
    listed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in listed) == plots and all(Path(p).is_file() for p in listed)


def test_without_an_upload_the_summary_names_the_plots_instead_of_breaking_them(compiled, capsys):
    assert main(["report", str(compiled)]) == 0
    text = capsys.readouterr().out
    assert github_images(text) == []
    for p in (compiled / "plots").glob("*.png"):
        assert f"`plots/{p.name}` in the artifact" in text


def test_report_refuses_a_non_http_image_base_and_a_folder_without_report(compiled, tmp_path, capsys):
    assert main(["report", str(compiled), "--image-base", "file:///tmp/plots"]) == 2
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--image-base" in err and "no report.md" in err
