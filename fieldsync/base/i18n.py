"""The language people read: chosen once per command from config's ui.language or the locale,
then every marked message goes through the gettext catalog shipped in fieldsync/locale/.

Core code marks its messages with `_()` (they are data); only cli/ prints them. Click help texts
(command docstrings and `help=` of options) are English in the source and translated when the
command tree is built (cli/base.py); `extract_help` lets `pybabel extract` find them (babel.cfg).
"""

from __future__ import annotations

import ast
import gettext
import inspect
import io
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

DOMAIN = "fieldsync"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("zh", "en")
SETTINGS = ("auto", *LANGUAGES)

_chosen: tuple[str, gettext.NullTranslations] | None = None


def locale_language(environ: Mapping[str, str] | None = None,
                    system_locale: Callable[[], str | None] | None = None) -> str:
    """zh or en from the POSIX locale: LC_ALL, else LC_MESSAGES, else LANG (zh_CN.UTF-8 -> zh);
    with none of them set (Windows never sets them), the system's locale name (zh-CN -> zh)."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    if system_locale is None and environ is None:
        system_locale = _windows_locale
    value = system_locale() if system_locale else None
    return "zh" if value and value.lower().startswith("zh") else "en"


def _windows_locale() -> str | None:
    """The Windows user's locale name ("zh-CN"); None elsewhere or when it cannot be read."""
    if os.name != "nt":
        return None
    import ctypes  # Windows only: kernel32 is not there elsewhere

    buffer = ctypes.create_unicode_buffer(85)  # LOCALE_NAME_MAX_LENGTH
    try:
        found = ctypes.windll.kernel32.GetUserDefaultLocaleName(buffer, len(buffer))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None
    return buffer.value if found else None


def choose(setting: str = "auto", environ: Mapping[str, str] | None = None) -> str:
    """Use `setting` (auto, zh or en; auto follows the locale) from now on; returns the language."""
    global _chosen
    language = locale_language(environ) if setting not in LANGUAGES else setting
    _chosen = (language, catalog(language))
    # click's own words ("Usage:", "No such option") go through gettext's default domain, which
    # picks its language from LANGUAGE first: set to the chosen one, so that click follows
    # ui.language and Windows (no locale variables) as fieldsync's own messages do.
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)
    if environ is None:
        os.environ["LANGUAGE"] = language
    return language


def catalog(language: str) -> gettext.NullTranslations:
    """The compiled catalog for `language`; English is the source language, so it has none."""
    if language == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])


def language() -> str:
    """The language in use (chosen from the locale on first use)."""
    if _chosen is None:
        choose()
    return _chosen[0]  # type: ignore[index]


def _(message: str) -> str:
    """`message` in the chosen language (English when the catalog has no translation)."""
    if _chosen is None:
        choose()
    return _chosen[1].gettext(message)  # type: ignore[index]


def N_(message: str) -> str:
    """Marks `message` for extraction only: translated later, where it is shown."""
    return message


# --------------------------------------------------------------------------- extraction

HELP_DECORATORS = {"command", "group"}


def extract_help(fileobj, keywords, comment_tags, options) -> Iterator[tuple[int, str, str, list]]:
    """A Babel extractor: `_()`/`N_()` calls as Babel's Python extractor finds them, plus the
    click help texts of a cli module — docstrings of @command/@group functions (cleaned as click
    shows them) and every `help="..."` keyword — which are translated at run time, not marked."""
    from babel.messages.extract import extract_python  # only pybabel runs this

    source = fileobj.read()
    yield from extract_python(io.BytesIO(source), keywords, comment_tags, options)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and any(_is_command(d) for d in node.decorator_list):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.lineno, "", inspect.cleandoc(doc), ["click command help"]
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "help" and isinstance(keyword.value, ast.Constant) \
                        and isinstance(keyword.value.value, str):
                    yield keyword.value.lineno, "", inspect.cleandoc(keyword.value.value), ["click option help"]


def _is_command(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name in HELP_DECORATORS

