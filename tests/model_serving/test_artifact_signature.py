"""model.json's Ed25519 signature: only the holder of the signing key makes a version production unpickles.

Each refused version carries a pickle that would create a marker file when unpickled: a refusal must come
before joblib ever opens model.joblib.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
from pathlib import Path

import pytest

from model_serving import artifact
from synthetic.versions import build_tiny_version
from tests.support import DEPLOY_KEYS, OTHER_DEPLOY_KEYS


class _Mkdir:
    """Unpickling this creates ``path``: the proof that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_version(tmp_path_factory.mktemp("models"), rows=120, n_estimators=3)


def _hostile_copy(version: Path, into: Path) -> tuple[Path, Path]:
    """A copy of ``version`` whose model.joblib is a marker-making pickle, sha256 updated, unsigned."""
    target = into / version.name
    target.mkdir(parents=True)
    marker = into / "unpickled"
    (target / artifact.MODEL_FILE).write_bytes(pickle.dumps(_Mkdir(str(marker))))
    data = json.loads((version / artifact.MANIFEST_FILE).read_text())
    data["sha256"] = artifact.sha256_of(target / artifact.MODEL_FILE)
    (target / artifact.MANIFEST_FILE).write_text(json.dumps(data))
    return target, marker


def _hmac_sign(version: Path, secret: bytes) -> None:
    """Sign as deploy did before Ed25519: HMAC-SHA256 over the canonical JSON without the signature."""
    data = json.loads((version / artifact.MANIFEST_FILE).read_text())
    data.pop("signature", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    data["signature"] = "hmac-sha256:" + hmac.new(secret, canonical, hashlib.sha256).hexdigest()
    (version / artifact.MANIFEST_FILE).write_text(json.dumps(data))


def test_a_version_signed_with_the_deploy_key_loads_with_its_public_key(
    unsigned: Path, tmp_path: Path
) -> None:
    target = tmp_path / unsigned.name
    target.mkdir()
    for name in (artifact.MODEL_FILE, artifact.MANIFEST_FILE):
        (target / name).write_bytes((unsigned / name).read_bytes())
    signed = artifact.sign_version(target, DEPLOY_KEYS.signing)
    assert signed.signature is not None and signed.signature.startswith("ed25519:")
    pipeline, manifest = artifact.load_version(target, DEPLOY_KEYS.public)
    assert manifest.version == unsigned.name and hasattr(pipeline, "predict")


@pytest.mark.parametrize(
    ("sign", "reason"),
    [
        (lambda v: artifact.sign_version(v, OTHER_DEPLOY_KEYS.signing),
         "model.json signature does not match (signed with another key or edited manifest)"),
        (lambda v: _hmac_sign(v, DEPLOY_KEYS.signing_text.encode()),
         "model.json carries a retired HMAC-SHA256 signature: production verifies Ed25519 only "
         "(sign the version again with deploy)"),
        (lambda v: None, "model.json is not signed"),
    ],
    ids=["another_key", "hmac", "unsigned"],
)
def test_a_version_not_signed_with_the_deploy_key_is_refused_and_never_unpickled(
    unsigned: Path, tmp_path: Path, sign, reason: str
) -> None:
    version, marker = _hostile_copy(unsigned, tmp_path)
    sign(version)
    with pytest.raises(artifact.ArtifactError) as refused:
        artifact.load_version(version, DEPLOY_KEYS.public)
    assert str(refused.value) == reason
    assert not marker.exists(), "the pickle was loaded before the signature was checked"


def test_a_manifest_edited_after_signing_is_refused(unsigned: Path, tmp_path: Path) -> None:
    version, marker = _hostile_copy(unsigned, tmp_path)
    artifact.sign_version(version, DEPLOY_KEYS.signing)
    data = json.loads((version / artifact.MANIFEST_FILE).read_text())
    data["metrics"]["holdout"]["r2"] = 0.99
    (version / artifact.MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(artifact.ArtifactError, match="signature does not match"):
        artifact.load_version(version, DEPLOY_KEYS.public)
    assert not marker.exists()


def test_a_public_key_cannot_sign_and_bad_key_text_is_one_line() -> None:
    with pytest.raises(artifact.ArtifactError) as bad:
        artifact.parse_public_key("CHANGE-ME-keygen-public-key")
    assert "not the base64 of 32 bytes" in str(bad.value) and "\n" not in str(bad.value)
    with pytest.raises(artifact.ArtifactError):
        artifact.parse_signing_key(DEPLOY_KEYS.public_text + "AAAA")
    # The public half is not a signing key for the same pair: whoever holds it signs for another key.
    impostor = artifact.parse_signing_key(DEPLOY_KEYS.public_text)
    assert artifact.public_key_of(impostor) != DEPLOY_KEYS.public


def test_keygen_makes_a_matching_pair_once_and_keeps_it(tmp_path: Path) -> None:
    from model_serving.development_server.keygen import kept_pair

    first = kept_pair(tmp_path / "keys")
    assert kept_pair(tmp_path / "keys") == first
    signing, public = first
    assert artifact.public_key_of(artifact.parse_signing_key(signing)) == artifact.parse_public_key(public)
    assert (tmp_path / "keys" / "deploy_signing_key").stat().st_mode & 0o077 == 0
