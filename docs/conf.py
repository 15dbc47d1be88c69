"""Sphinx configuration of fastprop's documentation.

Build from the repository root, with warnings as errors::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The pages are Markdown (MyST). The API reference (``api.md``) is generated from the library's
numpydoc docstrings by autodoc and numpydoc. The performance page includes the generated
``_generated/performance.md`` and ``_generated/first_call.md`` where they exist and their
placeholders in ``_placeholder/`` otherwise, so the build passes either way (see
:data:`INCLUDES`).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The fastprop of this working tree, also where it is not installed.
sys.path.insert(0, str(ROOT))

import fastprop  # noqa: E402

project = "fastprop"
author = "the fastprop developers"
copyright = "the fastprop developers"
version = release = fastprop.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# _generated and _placeholder hold files that performance.md includes, not pages of their own.
exclude_patterns = ["_build", "_generated", "_placeholder", "Thumbs.db", ".DS_Store"]

# -- MyST ------------------------------------------------------------------------------------
myst_enable_extensions = ["deflist"]
myst_heading_anchors = 3

# -- autodoc, autosummary, numpydoc ----------------------------------------------------------
# api.md lists every object in autosummary tables and documents it in full on the same page:
# no stub pages are generated.
autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
# The docstrings give every type in numpydoc's Parameters sections; the annotations in the
# signatures would repeat them, less readably.
autodoc_typehints = "none"
autodoc_preserve_defaults = True
# autodoc documents the members (``:members:`` in api.md); numpydoc's extra tables of them
# would list each one twice.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- HTML ------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"fastprop {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# -- the performance page --------------------------------------------------------------------
#: The lines of performance.md that become includes: each of a generated file in ``_generated/``
#: (``fastprop compare --markdown`` writes ``performance.md``, ``python -m bench.compilation
#: --markdown`` writes ``first_call.md``) where it exists, else of its placeholder.
INCLUDES = {"<!-- performance-results -->": "performance.md",
            "<!-- first-call-results -->": "first_call.md"}


def performance_include(name: str) -> str:
    """A MyST include of the generated file ``name`` when it exists, else of its placeholder.

    ``relative-images`` makes image paths in the included file relative to that file, so the
    generated page can refer to a plot beside it (``_generated/performance.png``).
    """
    generated = DOCS / "_generated" / name
    included = generated if generated.exists() else DOCS / "_placeholder" / name
    return (f"```{{include}} {included.relative_to(DOCS).as_posix()}\n"
            f":relative-images:\n```\n")


def include_results(app, docname: str, source: list[str]) -> None:
    """``source-read``: put the includes in place of the :data:`INCLUDES` markers in
    performance.md."""
    if docname == "performance":
        for marker, name in INCLUDES.items():
            source[0] = source[0].replace(marker, performance_include(name))


def reread_performance(app, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: read performance.md on every build, since the generated file may
    have appeared or gone since the last one."""
    return ["performance"] if "performance" in env.found_docs else []


def setup(app) -> dict:
    app.connect("source-read", include_results)
    app.connect("env-get-outdated", reread_performance)
    return {"parallel_read_safe": True}
