"""Check that asv's dashboard draws fastprop's graphs, in a real headless browser.

Run from the repository root (``python bench/check_dashboard.py --help``):

1. optionally, ``asv run --python=same --quick --set-commit-hash HEAD --bench REGEX`` first
   (``--run-quick REGEX``), so that there are results to draw;
2. ``asv publish`` (on whatever results exist under ``.asv/results``);
3. make the published pages work offline: asv's ``index.html`` loads jQuery, flot, Bootstrap,
   stupidtable and blueimp-md5 from CDNs, which this machine (and CI) cannot reach; the same
   files are fetched once from the npm registry (``npm pack``, cached in ``.asv/vendor``) and
   the page is pointed at local copies;
4. serve the pages on 127.0.0.1 and open them with Debian's chromium, headless: dump the DOM
   of the benchmark grid and of one benchmark's graph page after their scripts have run, and
   take a screenshot of the graph page;
5. exit 1 unless the grid lists fastprop's benchmarks and the graph page holds a drawn flot
   plot: its canvas, and at least two finite points in the plot's data, counted by a script
   added to the page as served (``PROBE``).

Needs ``apt-get install chromium`` and npm (on PATH) the first time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
DEFAULT_BENCHMARK = "gradient.Gradient.time_value_and_grad"
#: The graph page's state, as asv writes it in the URL: time per gradient over the commits, log
#: scale, matrix, numpy and the GEMM floor at two sizes in float64. Parameters are
#: ``p-NAME=VALUE`` with the value as asv shows it (a string's repr).
DEFAULT_SELECTION = ("y-axis-scale=log&p-contender='matrix'&p-contender='numpy'"
                     "&p-contender='gemm'&p-case='1x32x4'&p-case='256x256x4'&p-dtype='float64'")
#: Every file that asv's index.html loads from a CDN, by its file name in the URL: the npm
#: package with the same code, and the file's path in the package's tarball. (stupidtable
#: 1.0.1 is not on npm; 1.1.3 has the same interface.)
VENDOR = {
    "jquery-3.3.1.min.js": ("jquery@3.3.1", "package/dist/jquery.min.js"),
    "jquery.flot.min.js": ("flot@0.8.3", "package/jquery.flot.js"),
    "jquery.flot.time.min.js": ("flot@0.8.3", "package/jquery.flot.time.js"),
    "jquery.flot.selection.min.js": ("flot@0.8.3", "package/jquery.flot.selection.js"),
    "jquery.flot.categories.min.js": ("flot@0.8.3", "package/jquery.flot.categories.js"),
    "jquery.flot.orderBars.js": ("flot-orderbars@1.0.0", "package/js/jquery.flot.orderBars.js"),
    "stupidtable.min.js": ("stupid-table-plugin@1.1.3", "package/stupidtable.min.js"),
    "md5.min.js": ("blueimp-md5@2.19.0", "package/js/md5.min.js"),
    "bootstrap.min.js": ("bootstrap@3.1.1", "package/dist/js/bootstrap.min.js"),
    "bootstrap.min.css": ("bootstrap@3.1.1", "package/dist/css/bootstrap.min.css"),
}
#: A <script src=...> or <link href=...> tag that loads from another host.
_EXTERNAL_TAG = re.compile(r'<(script|link)\b[^>]*?\b(?:src|href)="(https?://[^"]+)"[^>]*>')
_INTEGRITY = re.compile(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"')


def asv(config: Path, *args: str) -> None:
    """Run an asv command with this interpreter, in the configuration's directory.

    With ``OPENBLAS_THREAD_TIMEOUT=18`` unless set: the ratio benchmarks need it (see
    bench/README.md).
    """
    command = [sys.executable, "-m", "asv", *args, "--config", str(config)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=config.parent, check=True,
                   env={"OPENBLAS_THREAD_TIMEOUT": "18", **os.environ})


def html_dir(config: Path) -> Path:
    """The ``html_dir`` of an asv configuration (strict JSON), as an absolute path."""
    settings = json.loads(config.read_text())
    return (config.parent / settings.get("html_dir", "html")).resolve()


def npm_file(package: str, member: str, cache: Path) -> Path:
    """One file of an npm package's tarball, fetched with ``npm pack`` once and cached.

    Parameters
    ----------
    package : str
        ``name@version``.
    member : str
        Path of the file inside the tarball (``package/...``).
    cache : Path
        Directory for tarballs and extracted files.

    Returns
    -------
    Path
        The extracted file.
    """
    target = cache / package / member
    if target.exists():
        return target
    tarballs = cache / "tarballs"
    tarballs.mkdir(parents=True, exist_ok=True)
    name = subprocess.run(["npm", "pack", "--silent", package, "--pack-destination", tarballs],
                          check=True, capture_output=True, text=True).stdout.split()[-1]
    with tarfile.open(tarballs / name) as archive:
        archive.extract(member, cache / package, filter="data")
    return target


def vendor_assets(pages: Path, cache: Path) -> list[str]:
    """Point the published ``index.html`` at local copies of everything it loads from CDNs.

    Parameters
    ----------
    pages : Path
        asv's html directory; ``index.html`` is rewritten and the copies go to ``vendor/``.
    cache : Path
        Where npm tarballs are cached (see :func:`npm_file`).

    Returns
    -------
    list of str
        The URLs replaced.

    Raises
    ------
    SystemExit
        When index.html loads a file that :data:`VENDOR` does not know (a newer asv).
    """
    index = pages / "index.html"
    html = index.read_text()
    unknown = [url for _, url in _EXTERNAL_TAG.findall(html) if url.rsplit("/", 1)[-1]
               not in VENDOR]
    if unknown:
        raise SystemExit(f"index.html loads files that VENDOR does not list: {unknown}")
    (pages / "vendor").mkdir(exist_ok=True)

    def local(match: re.Match[str]) -> str:
        url = match.group(2)
        file_name = url.rsplit("/", 1)[-1]
        shutil.copyfile(npm_file(*VENDOR[file_name], cache), pages / "vendor" / file_name)
        # The CDN's integrity hashes are of its own (minified) builds, not of these copies.
        return _INTEGRITY.sub("", match.group(0)).replace(url, f"vendor/{file_name}")

    replaced = [url for _, url in _EXTERNAL_TAG.findall(html)]
    index.write_text(_EXTERNAL_TAG.sub(local, html))
    return replaced


#: Added to index.html as served to chromium (not to the published file): counts the finite
#: points of the plot that flot draws in #main-graph (flot keeps it as the element's "plot"
#: data) and writes the count on <body data-plotted-points="N">, for the DOM dump.
PROBE = """<script>
setInterval(function () {
  var plot = window.jQuery && jQuery("#main-graph").data("plot");
  if (!plot) { return; }
  var points = 0;
  plot.getData().forEach(function (series) {
    series.data.forEach(function (p) { if (p && p[1] !== null && isFinite(p[1])) { points++; } });
  });
  document.body.setAttribute("data-plotted-points", points);
}, 250);
</script>
"""


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) while in the context.

    ``index.html`` is served with :data:`PROBE` added at the end of its body.

    Yields
    ------
    str
        The base URL, ``http://127.0.0.1:PORT/``.
    """
    index = (directory / "index.html").read_text().replace("</body>", PROBE + "</body>", 1)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            """Serve the probed index.html, and every other file as it is."""
            if self.path.split("?", 1)[0] not in ("/", "/index.html"):
                super().do_GET()
                return
            body = index.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Log nothing: the requests are the browser's."""

    handler = functools.partial(Handler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


def chromium(url: str, *options: str, browser: str = CHROMIUM, budget_ms: int = 15000) -> str:
    """Load ``url`` in headless chromium, in a new profile, and return what it printed.

    Parameters
    ----------
    url : str
        The page.
    *options : str
        What to do with it: ``--dump-dom``, or ``--screenshot=PATH`` (with ``--window-size``).
    browser : str
        The chromium executable.
    budget_ms : int
        Virtual time the page gets to run its scripts and load its data before the dump.

    Returns
    -------
    str
        Chromium's standard output (the DOM, for ``--dump-dom``).
    """
    with tempfile.TemporaryDirectory(prefix="fastprop-chromium-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                   *options, url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"chromium failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def grid_problems(dom: str, benchmark: str) -> list[str]:
    """What is missing from the benchmark grid's DOM: fastprop's name and ``benchmark``."""
    problems = []
    if "fastprop" not in dom:
        problems.append("the grid page does not name the project fastprop")
    if benchmark not in dom:
        problems.append(f"the grid page does not list {benchmark}")
    return problems


def plotted_points(dom: str) -> int:
    """The number of finite points in the drawn plot, as :data:`PROBE` wrote it (0 if none)."""
    match = re.search(r'data-plotted-points="(\d+)"', dom)
    return int(match.group(1)) if match else 0


def graph_problems(dom: str) -> list[str]:
    """What is missing from a graph page's DOM for a drawn plot.

    flot draws into ``<canvas class="flot-base">`` inside ``#main-graph``; :data:`PROBE` counts
    the finite points it was given; asv writes "No graphs to load." there when it has no data.
    """
    problems = []
    if 'id="main-graph"' not in dom:
        problems.append("no #main-graph element")
    elif 'class="flot-base"' not in dom.split('id="main-graph"', 1)[1]:
        problems.append("no flot canvas in #main-graph")
    if "No graphs to load" in dom:
        problems.append('asv says "No graphs to load"')
    if plotted_points(dom) < 2:
        problems.append(f"the plot has {plotted_points(dom)} finite points (at least 2 needed)")
    return problems


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "asv.conf.json")
    parser.add_argument("--benchmark", default=DEFAULT_BENCHMARK,
                        help="the benchmark whose graph page is checked (default: %(default)s)")
    parser.add_argument("--selection", default=DEFAULT_SELECTION,
                        help="its parameter selection, as asv's URL query "
                             "(default: %(default)s)")
    parser.add_argument("--screenshot", type=Path, default=REPO_ROOT / ".asv/dashboard.png",
                        help="where the graph page's screenshot goes (default: %(default)s)")
    parser.add_argument("--run-quick", metavar="REGEX",
                        help="first run `asv run --python=same --quick --set-commit-hash HEAD "
                             "--bench REGEX` to have results")
    parser.add_argument("--vendor-cache", type=Path, default=REPO_ROOT / ".asv/vendor",
                        help="where the npm files are cached (default: %(default)s)")
    parser.add_argument("--chromium", default=CHROMIUM, help="default: %(default)s")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Publish, serve, load in chromium, check; 0 when the graphs are drawn."""
    args = parse_args(argv)
    if not Path(args.chromium).exists():
        raise SystemExit(f"{args.chromium} not found: apt-get install -y chromium")
    config = args.config.resolve()
    if args.run_quick:
        asv(config, "machine", "--yes")
        asv(config, "run", "--python=same", "--quick", "--set-commit-hash", "HEAD",
            "--bench", args.run_quick)
    asv(config, "publish")
    pages = html_dir(config)
    replaced = vendor_assets(pages, args.vendor_cache)
    print(f"pointed index.html at local copies of {len(replaced)} CDN files")

    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    with serve(pages) as base:
        graph_url = f"{base}#{args.benchmark}?{args.selection}"
        grid_dom = chromium(base, "--dump-dom", browser=args.chromium)
        graph_dom = chromium(graph_url, "--dump-dom", browser=args.chromium)
        chromium(graph_url, f"--screenshot={args.screenshot.resolve()}",
                 "--window-size=1400,1000", browser=args.chromium)
    problems = grid_problems(grid_dom, args.benchmark) + graph_problems(graph_dom)
    print(f"graph page: {graph_url}")
    print(f"screenshot: {args.screenshot.resolve()}")
    for problem in problems:
        print(f"FAIL: {problem}")
    if problems:
        return 1
    print(f"OK: the grid lists fastprop's benchmarks and {args.benchmark} is drawn "
          f"({plotted_points(graph_dom)} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
