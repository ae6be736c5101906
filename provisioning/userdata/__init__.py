"""cloud-init user data per role: one `#cloud-config` template each, next to this file.

Why `string.Template` and not Jinja: the templates only need a handful of names ($fleet, $role, $index,
$hostname); `substitute` refuses an unknown `$name`, so a typo in a custom template is an error, not a
silently empty value on a booted VM. A fleet may replace a role's template with `roles.<role>.user_data`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from string import Template

import yaml

from provisioning.fleet import FleetError

TEMPLATES = Path(__file__).resolve().parent
NOVA_USER_DATA_LIMIT = 65535  # bytes of base64, Nova's limit


def render_user_data(
    *, role: str, fleet: str, hostname: str, index: int, template: Path | None = None
) -> str:
    path = template or TEMPLATES / f"{role}.yaml.tmpl"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise FleetError(f"roles.{role}.user_data: template not found: {path}") from err
    try:
        rendered = Template(text).substitute(fleet=fleet, role=role, index=index, hostname=hostname)
    except (KeyError, ValueError) as err:
        raise FleetError(
            f"{path}: unknown or malformed placeholder {err} (known: $fleet $role $index "
            "$hostname; write $$ for a literal $)"
        ) from err
    if rendered.startswith("#cloud-config"):
        try:
            yaml.safe_load(rendered)
        except yaml.YAMLError as err:
            raise FleetError(
                f"{path}: rendered #cloud-config is not valid YAML: {str(err).splitlines()[0]}"
            ) from err
    if len(base64.b64encode(rendered.encode())) > NOVA_USER_DATA_LIMIT:
        raise FleetError(f"{path}: user data exceeds Nova's {NOVA_USER_DATA_LIMIT}-byte limit once encoded")
    return rendered
