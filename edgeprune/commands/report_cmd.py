"""`edgeprune report OUTDIR [--image-base URL]`: report.md for a GitHub job summary."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--image-base", default=None, metavar="URL",
              help="Where the artifact's plots/*.png were uploaded (e.g. the release's download URL): "
                   "each plot is shown from URL/NAME. Without it the plots are named, not shown.")
@click.option("--list-plots", is_flag=True, help="Print the plot files report.md shows, one a line, and exit.")
def command(outdir, image_base, list_plots):
    """Print OUTDIR's report.md as a GitHub job summary renders it: GitHub shows only http(s)
    images, so plots link to where they were uploaded (--image-base), never to a relative path
    that would show as a broken image."""
    from ..report.summary import plot_files, summary_markdown

    text = summary_markdown(outdir, image_base)     # checks report.md and its plots first
    if list_plots:
        for p in plot_files(outdir):
            click.echo(str(p))
        return
    click.echo(text, nl=not text.endswith("\n"))
