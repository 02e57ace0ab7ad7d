"""Templates (templates/, or the installed fieldsync.templates) rendered with Jinja2.

Autoescaping is on for every HTML template, so a value from data is always text in a page;
StrictUndefined makes a missing value an error instead of an empty string.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import quote

import jinja2

import fieldsync.templates as installed_templates


def template_dirs() -> list[Path]:
    """Where templates (and the static files beside them) live: the fieldsync.templates
    package, which setup.cfg maps to the checkout's templates/ (so an editable install and a
    wheel find the same files)."""
    return [Path(p) for p in installed_templates.__path__]


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Templates from the installed package (fieldsync.templates) or, in a checkout, templates/."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in template_dirs()]),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["href"] = lambda parts: "/".join(quote(str(p)) for p in
                                                  (parts if isinstance(parts, (list, tuple)) else [parts]))
    # |tojson escapes < > & ' (so data cannot end an inline <script>); Chinese stays readable.
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    return env


def render_template(name: str, **values) -> str:
    return environment().get_template(name).render(**values)
