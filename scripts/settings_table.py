"""README.md's configuration table, generated from the settings classes so that it cannot drift from them.

    python -m scripts.settings_table          # rewrite the block in README.md (``make docs`` runs it)
    python -m scripts.settings_table --check  # exit 1 when README.md's block differs

The block sits between ``<!-- settings-table:start -->`` and ``<!-- settings-table:end -->``. Each row is one
field that names where it is read (its ``validation_alias``): the variable (for the hooks, the git config key
first), the default, the module that reads it and the field's ``description``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from envsettings import EnvSettings
from envsettings.base import sources_of

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def settings_classes() -> list[tuple[str, type[EnvSettings]]]:
    """(the module that reads them, the class) for every settings class an operator configures."""
    from data_collection.settings import Settings as GitHubSettings
    from githooks.settings import HookSettings
    from model_serving.development_server.settings import Settings as DevelopmentSettings
    from model_serving.production_server.settings import GunicornSettings, ServingSettings
    from provisioning.settings import ProvisioningSettings
    from rehearsal.settings import Settings as RehearsalSettings

    return [
        ("data_collection/settings.py", GitHubSettings),
        ("model_serving/development_server/settings.py", DevelopmentSettings),
        ("model_serving/production_server/settings.py", ServingSettings),
        ("model_serving/production_server/settings.py (gunicorn.conf.py)", GunicornSettings),
        ("githooks/settings.py", HookSettings),
        ("provisioning/settings.py (start_instances.py)", ProvisioningSettings),
        ("rehearsal/settings.py", RehearsalSettings),
    ]


def _default(cls: type[EnvSettings], name: str) -> str:
    info = cls.model_fields[name]
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, Path) and value == Path(sys.executable):
            return "the hook's own interpreter"
        if isinstance(value, str) and name == "host_name":
            return "the host's name"
    else:
        value = info.default
    if value is None or value is PydanticUndefined:
        return "(required)" if value is PydanticUndefined else "unset"
    if isinstance(value, Path):
        if value == Path(tempfile.gettempdir()):
            return "the system's temporary directory"
        if value.is_relative_to(REPO_ROOT):
            return f"`{value.relative_to(REPO_ROOT)}` (in the checkout)"
    if isinstance(value, tuple | list):
        value = ",".join(str(item) for item in value) if value else ""
        if not value:
            return "unset"
    if isinstance(value, dict) and not value:
        return "unset"
    if isinstance(value, bool):
        value = "1" if value else "0"
    return f"`{value}`" if value != "" else "empty"


def _where(cls: type[EnvSettings], name: str) -> str:
    sources = [cls.display_name(source) for source in sources_of(cls, name)]
    return ", else ".join(f"`{source}`" for source in sources)


def rows() -> list[str]:
    """The table's lines (header first); a variable two modules read is one row naming both."""
    table: dict[str, list[str]] = {}
    for module, cls in settings_classes():
        for name, info in cls.model_fields.items():
            if not sources_of(cls, name):
                continue  # set by code only
            where = _where(cls, name)
            if where in table:
                table[where][1] += f", {module}"
                continue
            table[where] = [_default(cls, name), module, (info.description or "").replace("|", "\\|")]
    lines = ["| variable | default | read by | meaning |", "|---|---|---|---|"]
    lines += [f"| {where} | {' | '.join(cells)} |" for where, cells in table.items()]
    return lines


def render() -> str:
    return "\n".join([START, *rows(), END])


def current(text: str) -> str:
    start, end = text.index(START), text.index(END) + len(END)
    return text[start:end]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report a difference (exit 1)")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    block = render()
    if current(text) == block:
        return 0
    if args.check:
        print(f"{README.name}: the settings table differs from the settings classes "
              "(run python -m scripts.settings_table)", file=sys.stderr)
        return 1
    README.write_text(text.replace(current(text), block), encoding="utf-8")
    print(f"{README.name}: settings table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
