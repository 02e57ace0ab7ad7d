"""YAML files in the tree (customer.yaml, visit.yaml): safe_load in, atomic write out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fieldsync.base.atomic import write_text
from fieldsync.base.i18n import _
from fieldsync.errors import TreeError

# libyaml's safe loader when PyYAML was built with it: the same safe constructors (no
# code-execution tags), about ten times faster, which matters when the server side reads
# tens of thousands of visit.yaml files.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> dict[str, Any]:
    """Load a mapping with the safe loader; a broken file is an error naming it."""
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8-sig"), Loader=SAFE_LOADER)
    except FileNotFoundError:
        raise TreeError(_("{path} is missing").format(path=path)) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TreeError(_("{path} cannot be read as YAML ({exc}); fix or restore it").format(
                          path=path, exc=exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TreeError(_("{path} should hold a mapping of keys, not {name}").format(
                          path=path, name=type(data).__name__))
    return data


def dump_yaml(data: dict[str, Any], comment: str | None = None) -> str:
    """YAML text with Chinese kept readable (allow_unicode) and keys in the given order."""
    body = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=False,
                          width=1000)
    header = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
    return header + body


def write_yaml(path: Path, data: dict[str, Any], comment: str | None = None) -> None:
    write_text(path, dump_yaml(data, comment))
