"""Templates (templates/, or the installed fieldsync.templates) rendered with Jinja2.

Autoescaping is on for every HTML template, so a value from data is always text in a page;
StrictUndefined makes a missing value an error instead of an empty string. Times go through
the clock's display zone: `|local_time` (YYYY-MM-DD HH:MM), `|local_day`, and `|time_tag`, a
<time> element that keeps the stored ISO time in its datetime attribute for machines.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape

import fieldsync.templates as installed_templates
from fieldsync.base import clock


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
    env.filters["local_time"] = clock.local_time
    env.filters["local_day"] = clock.local_day
    env.filters["time_tag"] = time_tag
    # |tojson escapes < > & ' (so data cannot end an inline <script>); Chinese stays readable.
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    return env


def time_tag(value) -> Markup:
    """`value` as people read it in a <time> element whose datetime attribute is the instant as
    stored (with its offset); a value without an instant is plain (escaped) text."""
    moment = clock.parse(value)
    if moment is None:
        return escape(clock.local_time(value))
    return Markup('<time datetime="{}">{}</time>').format(moment.isoformat(), clock.local_time(moment))


def render_template(name: str, **values) -> str:
    return environment().get_template(name).render(**values)
