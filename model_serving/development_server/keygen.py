"""``keygen``: make the Ed25519 key pair that signs model versions (docs/security.md, README's run book).

    python -m model_serving.development_server keygen                  # two vault.yml lines on stdout
    python -m model_serving.development_server keygen --dir var/keys   # or keep the pair in files

The signing key goes to the development host's deploy account only; the public key to every production host
(the deploy_key role writes each). Both are the base64 of 32 raw bytes: one line each, as the vault holds
them. With ``--dir`` the pair is made once and kept (``deploy_signing_key`` 0600, ``deploy_public_key`` 0644);
a later run prints the kept pair, which is what the local and demo inventories look up on every converge.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import click

from model_serving import artifact

SIGNING_KEY_FILE: Final = "deploy_signing_key"
PUBLIC_KEY_FILE: Final = "deploy_public_key"


def kept_pair(directory: Path) -> tuple[str, str]:
    """The pair kept in ``directory``, made there first if absent (the signing key is written 0600 from the
    start, never readable by others for a moment)."""
    signing_path, public_path = directory / SIGNING_KEY_FILE, directory / PUBLIC_KEY_FILE
    if not signing_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        signing, public = artifact.generate_key_pair()
        fd = os.open(signing_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(signing + "\n")
        public_path.write_text(public + "\n", encoding="utf-8")
        public_path.chmod(0o644)
    signing = signing_path.read_text(encoding="utf-8").strip()
    public = public_path.read_text(encoding="utf-8").strip()
    if artifact.public_key_of(artifact.parse_signing_key(signing)) != artifact.parse_public_key(public):
        raise artifact.ArtifactError(f"{public_path} is not the public key of {signing_path}")
    return signing, public


@click.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Keep the pair in this directory (made once, reused later) instead of printing a new one.")
@click.option("--show", type=click.Choice(["both", "signing", "public"]), default="both", show_default=True,
              help="Print both vault.yml lines, or only the bare signing or public key.")
def keygen_command(directory: Path | None, show: str) -> None:
    """Make the deploy signing key pair; print it as vault.yml lines."""
    try:
        signing, public = kept_pair(directory) if directory else artifact.generate_key_pair()
    except artifact.ArtifactError as exc:
        raise click.ClickException(str(exc)) from None
    if show == "signing":
        click.echo(signing)
    elif show == "public":
        click.echo(public)
    else:
        click.echo(f'vault_stargazer_deploy_signing_key: "{signing}"')
        click.echo(f'vault_stargazer_deploy_public_key: "{public}"')


if __name__ == "__main__":
    keygen_command()
