"""The documentation site in docs/ and the README: the site builds with warnings as errors, its
API page renders in headless Chromium, its performance page shows the generated results and
their plot (or says that there are none), and the hand-written pages stay within their rules.

The build tests need Sphinx and the docs extra (``pip install ".[docs]"``); the browser tests
need /usr/bin/chromium (``apt-get install -y chromium``). Each is skipped where that is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # bench/ is a package at the root, not installed
    sys.path.insert(0, str(REPO_ROOT))

from bench.check_dashboard import CHROMIUM, chromium  # noqa: E402

DOCS = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"
GENERATED = DOCS / "_generated" / "performance.md"
#: Where the API page's screenshot goes (docs/_build is git-ignored).
SCREENSHOT = DOCS / "_build" / "screenshots" / "api.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The public API that docs/api.md must document: each name has an entry with this HTML id.
API_ENTRIES = ("MLP", "MLP.value_and_grad", "MLP.loss", "MLP.forward", "MLP.predict",
               "MLP.init", "MLP.unpack", "MLP.pack", "MLP.save", "train", "History",
               "TrainState", "EarlyStopping", "SGD", "Adam", "Constant", "InverseScaling",
               "StepDecay", "save", "load", "gradient_check", "set_num_threads",
               "get_num_threads", "BACKENDS", "MLPRegressor", "MLPRegressor.fit",
               "MLPClassifier", "MLPClassifier.predict_proba")
#: The placeholder's words, shown when no results were generated.
NOT_GENERATED = "No results have been generated for this build"
#: Added to a copy of a built page: once the page has loaded, writes every <img> of the page's
#: main content with what the browser made of it (its natural size: 0 when it did not decode)
#: into <body data-images="JSON">, for the DOM dump.
IMAGE_PROBE = """<script>
window.addEventListener("load", function () {
  var images = document.querySelectorAll("article img");
  var found = Array.prototype.map.call(images, function (img) {
    return {src: img.getAttribute("src"), width: img.naturalWidth, height: img.naturalHeight};
  });
  document.body.setAttribute("data-images", JSON.stringify(found));
});
</script>
"""

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"needs {CHROMIUM} (apt-get install -y chromium)")


def build(source: Path, output: Path) -> Path:
    """Build the site in ``source`` into ``output`` with warnings as errors; the HTML folder.

    The command is the one of the contributing guide, with the doctrees out of the source tree.
    """
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
         "-d", str(output / "doctrees"), str(source), str(output / "html")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "WARNING" not in result.stderr, result.stderr[-5000:]
    return output / "html"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/ as it is, built once for this module: the HTML folder."""
    pytest.importorskip("sphinx")
    return build(DOCS, tmp_path_factory.mktemp("docs"))


def page_dom(page: Path) -> str:
    """The DOM of a built page after Chromium has loaded it."""
    return chromium(page.as_uri(), "--dump-dom")


def loaded_images(page: Path) -> list[dict]:
    """Every image of ``page``'s main content as Chromium loaded it: ``src`` and natural size.

    Reads a copy of the page, beside it (so that relative paths hold), with
    :data:`IMAGE_PROBE` added.
    """
    probe = page.with_name(f"{page.stem}.probe.html")
    probe.write_text(page.read_text().replace("</body>", IMAGE_PROBE + "</body>", 1))
    match = re.search(r'data-images="([^"]*)"', page_dom(probe))
    assert match, "the probe did not run"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


def tiny_png(width: int, height: int) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def refers_to_image(markdown: str) -> bool:
    """Whether a Markdown page shows an image (Markdown, HTML or a MyST directive)."""
    return bool(re.search(r"!\[[^\]]*\]\(|<img\b|\{(image|figure)\}", markdown))


def check_images(page: Path, expected: bool) -> list[dict]:
    """Every image of the page's main content is a PNG file that the browser decoded; there is
    at least one when ``expected``."""
    images = loaded_images(page)
    if expected:
        assert images, f"{page.name} shows no image"
    for image in images:
        assert image["width"] > 0 and image["height"] > 0, f"{image['src']} did not load"
        assert is_png(page.parent / image["src"]), f"{image['src']} is not a PNG file"
    return images


# -- the site ---------------------------------------------------------------------------------


def test_site_builds_without_warnings(site):
    for page in ("index", "getting-started", "usage", "training", "saving", "gpu", "design",
                 "performance", "benchmarking", "contributing", "api", "distributed"):
        assert (site / f"{page}.html").is_file(), page


@needs_chromium
def test_api_page_renders(site):
    page = site / "api.html"
    dom = page_dom(page)
    missing = [name for name in API_ENTRIES if f'id="fastprop.{name}"' not in dom]
    assert not missing, f"api.html has no entry for {missing}"
    # numpydoc turned the docstrings' sections into fields: value_and_grad's parameters.
    entry = dom.split('id="fastprop.MLP.value_and_grad"', 1)[1].split('id="fastprop.MLP.loss"')[0]
    assert "check_finite" in entry and "Parameters" in entry and "Returns" in entry
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    chromium(page.as_uri(), f"--screenshot={SCREENSHOT}", "--window-size=1280,2000")
    assert is_png(SCREENSHOT) and SCREENSHOT.stat().st_size > 10_000
    print(f"screenshot of the API page: {SCREENSHOT}")


@needs_chromium
def test_performance_page_shows_the_results_there_are(site):
    page = site / "performance.html"
    dom = page_dom(page)
    assert "What is measured" in dom
    generated = GENERATED.exists()
    assert (NOT_GENERATED in dom) is not generated
    check_images(page, expected=generated and refers_to_image(GENERATED.read_text()))


@needs_chromium
def test_generated_results_and_their_plot_are_included(tmp_path):
    """A copy of docs/ with a generated page and its plot, as ``fastprop compare --markdown``
    leaves them: the page shows the table and the plot, not the placeholder."""
    pytest.importorskip("sphinx")
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "_generated"))
    (source / "_generated").mkdir()
    (source / "_generated" / "performance.png").write_bytes(tiny_png(40, 30))
    (source / "_generated" / "performance.md").write_text(
        "| case | matrix |\n|---|---:|\n| 1x32x4 | made-up-figure |\n\n"
        "![Time per gradient](performance.png)\n")
    page = build(source, tmp_path / "out") / "performance.html"
    dom = page_dom(page)
    assert "made-up-figure" in dom and NOT_GENERATED not in dom
    (image,) = check_images(page, expected=True)
    assert (image["width"], image["height"]) == (40, 30)


# -- the hand-written pages -------------------------------------------------------------------


def hand_written() -> dict[str, str]:
    """The text of the README (less its generated summary) and of every hand-written page."""
    readme = re.sub(r"<!-- summary:start -->.*?<!-- summary:end -->", "", README.read_text(),
                    flags=re.S)
    pages = {path.relative_to(REPO_ROOT).as_posix(): path.read_text()
             for folder in (DOCS, DOCS / "_placeholder") for path in sorted(folder.glob("*.md"))}
    return {"README.md": readme, **pages}


def test_readme():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    # The quick start, whose test command CI runs.
    test_command = 'python3 -m pip install -e ".[test]" && python3 -m pytest'
    assert f"python3 -m pip install . && fastprop compare\n{test_command}\n" in text
    ci_script = (REPO_ROOT / ".ci" / "run").read_text()
    assert f"\n{test_command.replace('python3', 'python')}\n" in ci_script
    start, end = text.index("<!-- summary:start -->"), text.index("<!-- summary:end -->")
    summary = text[start:end]
    assert start < end and "fastprop compare" in summary and "--markdown" in summary
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO_ROOT / target).is_file(), target


def test_hand_written_pages_type_no_timings_and_speak_of_fastprop_alone():
    rules = {
        "a measured time": r"\d\s*(µs|us|ms|ns)\b|\d\s*GFLOP/s",
        "a note outside the repository": r"ANCHORS|\bseed \d{3}\b|\bissues? \d+|\bsessions?\b",
    }
    broken = [f"{name}: {what}: {match.group(0)!r}"
              for name, text in hand_written().items() for what, pattern in rules.items()
              for match in re.finditer(pattern, text)]
    assert not broken, "\n".join(broken)
