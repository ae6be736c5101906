"""The model artifact contract (docs/contracts.md §3-4): write, read, sign, verify and load one model version.

Training writes versions here, the deploy command signs them, the git hooks validate them and the Celery
workers load them: all through this module, so the rules live in one place.

Why signing: a pickle runs code when it is loaded. Production therefore unpickles only a model whose
manifest carries a valid Ed25519 signature and whose ``model.joblib`` matches the signed sha256. The signature
is checked BEFORE anything is unpickled.

Why Ed25519 and not a shared secret: whoever verifies must not be able to sign. Only the deploy account on the
development host holds the signing key; production hosts (the hooks, the workers that unpickle) hold the
public key, so code run by a served model finds nothing there that lets it sign another model.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# joblib, scikit-learn and model_serving.features are imported inside the functions that use them: the git
# hooks read, verify and install manifests through this module, and importing scikit-learn (~1.5 s) in every
# hook process would dominate a deploy's time.

MODEL_FILE: Final = "model.joblib"
MANIFEST_FILE: Final = "model.json"
#: The training dataset, gzipped, shipped with the model (listed with its sha256 under ``dataset_snapshot``).
SNAPSHOT_FILE: Final = "dataset.csv.gz"
VERSION_PATTERN: Final = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
#: The signing key (development host, deploy account only): inline or in a file.
SIGNING_KEY_ENV: Final = "STARGAZER_DEPLOY_SIGNING_KEY"
SIGNING_KEY_FILE_ENV: Final = "STARGAZER_DEPLOY_SIGNING_KEY_FILE"
#: The public key that verifies (production hosts: hooks and workers): inline or in a file.
PUBLIC_KEY_ENV: Final = "STARGAZER_DEPLOY_PUBLIC_KEY"
PUBLIC_KEY_FILE_ENV: Final = "STARGAZER_DEPLOY_PUBLIC_KEY_FILE"
#: ``model.json``'s ``signature``: this prefix, then the base64 of the 64-byte Ed25519 signature.
SIGNATURE_PREFIX: Final = "ed25519:"
#: The retired shared-secret scheme: such a model is refused by name, never verified.
RETIRED_HMAC_PREFIX: Final = "hmac-sha256:"
#: Raw size of an Ed25519 key (signing key seed or public key): 44 characters in base64.
KEY_BYTES: Final = 32


class ArtifactError(Exception):
    """A model version that must not be used; the message is one line a person can act on."""


class Metrics(BaseModel):
    model_config = ConfigDict(extra="allow")
    r2_log: float
    r2: float
    mae: float
    rmse: float
    spearman: float


class MetricsReport(BaseModel):
    protocol: str
    cv: Metrics
    holdout: Metrics


class InputColumn(BaseModel):
    name: str
    dtype: Literal["int", "float", "bool", "str", "datetime"]


class DatasetRef(BaseModel):
    path: str
    sha256: str
    rows: int = Field(ge=0)


class SnapshotRef(BaseModel):
    """``model.json``'s ``dataset_snapshot``: the training CSV, gzipped, next to the model.

    Why it travels with the model: the production host answers names of that dataset without GitHub
    (``production_server/known.py``), and a drift report needs the training distribution. Listed with its
    sha256 in the manifest, so the signature covers it as it covers ``model.joblib``. An extra key (absent
    from older manifests), so the signatures of versions written before it stay valid.
    """

    file: Literal["dataset.csv.gz"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0)


class Tuning(BaseModel):
    model_config = ConfigDict(extra="allow")
    trials: int = Field(ge=0)
    wall_seconds: float = Field(ge=0)
    nodes: int = Field(ge=0)
    cpus: float = Field(ge=0)
    search: str


class Manifest(BaseModel):
    """``model.json``. Unknown keys are kept (and signed) so later fields never break older readers."""

    model_config = ConfigDict(extra="allow")
    version: str = Field(pattern=VERSION_PATTERN.pattern)
    created_at: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    code_version: str
    feature_version: int
    python: str
    sklearn: str
    input_columns: list[InputColumn]
    target: str
    dataset: DatasetRef
    metrics: MetricsReport
    params: dict[str, Any]
    tuning: Tuning
    baseline: dict[str, Metrics]
    signature: str | None = None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit(cwd: Path | None = None) -> str:
    """The code version that produced a model ("unknown" outside a git checkout)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def expected_input_columns() -> list[dict[str, str]]:
    """What the serving code in this checkout reads: the pre-receive hook compares models against it."""
    from model_serving import features

    return [dict(column) for column in features.INPUT_COLUMNS]


def write_version(
    pipeline: object,
    models_dir: Path,
    *,
    dataset: dict[str, Any],
    metrics: dict[str, Any],
    params: dict[str, Any],
    tuning: dict[str, Any],
    baseline: dict[str, Any],
    extra: dict[str, Any] | None = None,
    now: datetime | None = None,
    compress: int = 3,
    dataset_file: Path | None = None,
) -> Path:
    """Write ``models_dir/<version>/{model.joblib,model.json}`` atomically and return the version dir.

    The version is ``YYYYMMDDTHHMMSSZ-<first 8 hex of model.joblib's sha256>``, so it names the exact bytes.
    The directory appears only when complete (written under a temp name, then renamed). ``dataset_file``: the
    training CSV, shipped gzipped as ``dataset.csv.gz`` (see ``SnapshotRef``).
    """
    import joblib
    import sklearn

    from model_serving import features

    models_dir.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=models_dir))
    try:
        # Readable by the models directory's group: on a development host that is the deploy account's
        # (the deploy_client role's handover directory), so deploy reads what Ray's account trained.
        staging.chmod(0o750)
        model_path = staging / MODEL_FILE
        joblib.dump(pipeline, model_path, compress=compress)
        digest = sha256_of(model_path)
        version = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{digest[:8]}"
        extra = dict(extra or {})
        if dataset_file is not None:
            extra["dataset_snapshot"] = write_snapshot(dataset_file, staging, rows=dataset["rows"])
        manifest = Manifest(
            version=version,
            created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            sha256=digest,
            code_version=git_commit(),
            feature_version=features.FEATURE_VERSION,
            python=platform.python_version(),
            sklearn=sklearn.__version__,
            input_columns=[InputColumn(**c) for c in expected_input_columns()],
            target="stargazers_count",
            dataset=DatasetRef(**dataset),
            metrics=MetricsReport(**metrics),
            params=params,
            tuning=Tuning(**tuning),
            baseline={name: Metrics(**values) for name, values in baseline.items()},
            signature=None,
            **(extra or {}),
        )
        write_manifest(staging, manifest)
        target = models_dir / version
        if target.exists():
            raise ArtifactError(f"model version {version} already exists in {models_dir}")
        staging.rename(target)
        return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_manifest(version_dir: Path, manifest: Manifest) -> None:
    """Write model.json atomically (temp file + rename)."""
    data = manifest.model_dump(mode="json")
    tmp = version_dir / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, version_dir / MANIFEST_FILE)


def read_manifest(version_dir: Path) -> Manifest:
    """Parse and validate model.json; any problem is one ArtifactError line."""
    path = version_dir / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{MANIFEST_FILE} missing in {version_dir}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{MANIFEST_FILE} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{MANIFEST_FILE} must hold a JSON object")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ArtifactError(f"{MANIFEST_FILE} is malformed at {where}: {first['msg']}") from None


def _canonical_bytes(manifest: Manifest) -> bytes:
    data = manifest.model_dump(mode="json")
    data.pop("signature", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def compute_signature(manifest: Manifest, signing_key: Ed25519PrivateKey) -> str:
    """Ed25519 over the canonical JSON of the manifest without its signature field: ``ed25519:<base64>``."""
    signature = signing_key.sign(_canonical_bytes(manifest))
    return SIGNATURE_PREFIX + base64.b64encode(signature).decode("ascii")


def sign_version(version_dir: Path, signing_key: Ed25519PrivateKey) -> Manifest:
    """Sign a version in place (the deploy command does this; training leaves ``signature`` null)."""
    manifest = read_manifest(version_dir)
    verify_checksum(version_dir, manifest)
    signed = manifest.model_copy(update={"signature": compute_signature(manifest, signing_key)})
    write_manifest(version_dir, signed)
    return signed


def verify_signature(manifest: Manifest, public_key: bytes) -> None:
    """Refuse, in one line, a manifest that the holder of the signing key did not sign as it stands.

    ``public_key``: the raw 32 bytes (``parse_public_key``), hashable, so the serving processes key their
    per-configuration caches with it.
    """
    signature = manifest.signature
    if not signature:
        raise ArtifactError("model.json is not signed")
    if signature.startswith(RETIRED_HMAC_PREFIX):
        raise ArtifactError(
            "model.json carries a retired HMAC-SHA256 signature: production verifies Ed25519 only "
            "(sign the version again with deploy)"
        )
    if not signature.startswith(SIGNATURE_PREFIX):
        scheme = signature.partition(":")[0][:20]
        raise ArtifactError(f"model.json signature scheme {scheme!r} is unknown (expected ed25519)")
    try:
        raw = base64.b64decode(signature[len(SIGNATURE_PREFIX) :], validate=True)
        verifier = Ed25519PublicKey.from_public_bytes(public_key)
    except (binascii.Error, ValueError):
        raise ArtifactError("model.json signature or the public key is malformed") from None
    try:
        verifier.verify(raw, _canonical_bytes(manifest))
    except InvalidSignature:
        raise ArtifactError(
            "model.json signature does not match (signed with another key or edited manifest)"
        ) from None


def generate_key_pair() -> tuple[str, str]:
    """A new (signing key, public key), each the base64 of its 32 raw bytes: one line each in the vault."""
    from cryptography.hazmat.primitives import serialization

    signing_key = Ed25519PrivateKey.generate()
    seed = signing_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = public_key_of(signing_key)
    return base64.b64encode(seed).decode("ascii"), base64.b64encode(public).decode("ascii")


def public_key_of(signing_key: Ed25519PrivateKey) -> bytes:
    """The raw public key that verifies what ``signing_key`` signs."""
    return signing_key.public_key().public_bytes_raw()


def _key_bytes(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ArtifactError(
            f"the {what} is not the base64 of {KEY_BYTES} bytes (make a pair with "
            "`python -m model_serving.development_server keygen`)"
        )
    return raw


def parse_signing_key(text: str) -> Ed25519PrivateKey:
    """The signing key from its base64 text (``vault_stargazer_deploy_signing_key``)."""
    return Ed25519PrivateKey.from_private_bytes(_key_bytes(text, "deploy signing key"))


def parse_public_key(text: str) -> bytes:
    """The raw public key from its base64 text (``stargazer_deploy_public_key``)."""
    return _key_bytes(text, "deploy public key")


def _key_text(text: str | None, path: str | Path | None, what: str) -> str | None:
    if text:
        return text
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ArtifactError(f"cannot read the {what} file {path}: {exc.strerror}") from None


def signing_key_from(text: str | None = None, path: str | Path | None = None) -> Ed25519PrivateKey | None:
    """The signing key given inline, else read from ``path``; None when neither is given."""
    found = _key_text(text, path, "deploy signing key")
    return None if found is None else parse_signing_key(found)


def public_key_from(text: str | None = None, path: str | Path | None = None) -> bytes | None:
    """The public key given inline, else read from ``path``; None when neither is given."""
    found = _key_text(text, path, "deploy public key")
    return None if found is None else parse_public_key(found)


def verify_checksum(version_dir: Path, manifest: Manifest) -> None:
    model_path = version_dir / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"{MODEL_FILE} missing in {version_dir}")
    actual = sha256_of(model_path)
    if actual != manifest.sha256:
        raise ArtifactError(
            f"{MODEL_FILE} sha256 {actual[:12]}… does not match model.json ({manifest.sha256[:12]}…)"
        )
    snapshot = snapshot_ref(manifest)
    if snapshot is not None:
        path = version_dir / snapshot.file
        if not path.is_file():
            raise ArtifactError(f"{snapshot.file} missing in {version_dir}")
        if sha256_of(path) != snapshot.sha256:
            raise ArtifactError(f"{snapshot.file} sha256 does not match model.json's dataset_snapshot")


def write_snapshot(dataset_file: Path, into: Path, *, rows: int) -> dict[str, Any]:
    """Gzip the training CSV into ``into/dataset.csv.gz`` (mtime 0: the same data gives the same bytes)."""
    import gzip

    target = into / SNAPSHOT_FILE
    with (dataset_file.open("rb") as source, target.open("wb") as raw,
          gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed):
        shutil.copyfileobj(source, packed)
    return SnapshotRef(file=SNAPSHOT_FILE, sha256=sha256_of(target), rows=rows).model_dump()


def snapshot_ref(manifest: Manifest) -> SnapshotRef | None:
    """The manifest's ``dataset_snapshot``, or None for a version that ships none."""
    raw = (manifest.model_extra or {}).get("dataset_snapshot")
    if raw is None:
        return None
    try:
        return SnapshotRef.model_validate(raw)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ArtifactError(f"{MANIFEST_FILE} is malformed at dataset_snapshot: {reason}") from None


def release_files(manifest: Manifest) -> tuple[str, ...]:
    """The files one version consists of: what deploy commits, pre-receive extracts and a release holds."""
    snapshot = snapshot_ref(manifest)
    return (MODEL_FILE, MANIFEST_FILE) + ((snapshot.file,) if snapshot is not None else ())


def check_compatible(manifest: Manifest) -> None:
    """Refuse a model this serving code cannot feed: other feature version, input columns or sklearn."""
    import sklearn

    from model_serving import features

    if manifest.feature_version != features.FEATURE_VERSION:
        raise ArtifactError(
            f"feature_version {manifest.feature_version} differs from the serving code's "
            f"{features.FEATURE_VERSION}"
        )
    pushed = [c.model_dump() for c in manifest.input_columns]
    if pushed != expected_input_columns():
        raise ArtifactError("input_columns differ from what the serving code expects")
    if manifest.sklearn.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        raise ArtifactError(
            f"model built with scikit-learn {manifest.sklearn}, serving has {sklearn.__version__}"
        )


def validate_version(
    version_dir: Path, public_key: bytes | None, *, require_signature: bool = True
) -> Manifest:
    """Every check that needs no unpickling, in the order that keeps untrusted bytes out of joblib."""
    manifest = read_manifest(version_dir)
    if require_signature:
        if public_key is None:
            raise ArtifactError("no deploy public key configured: cannot verify the model signature")
        verify_signature(manifest, public_key)
    verify_checksum(version_dir, manifest)
    check_compatible(manifest)
    return manifest


def load_version(
    version_dir: Path, public_key: bytes | None, *, require_signature: bool = True
) -> tuple[Any, Manifest]:
    """Validate, then unpickle. Returns (pipeline, manifest); raises ArtifactError on any problem."""
    import joblib

    manifest = validate_version(version_dir, public_key, require_signature=require_signature)
    try:
        pipeline = joblib.load(version_dir / MODEL_FILE)
    except Exception as exc:  # a corrupt pickle can raise nearly anything
        raise ArtifactError(f"{MODEL_FILE} cannot be loaded: {type(exc).__name__}: {exc}") from None
    if not hasattr(pipeline, "predict"):
        raise ArtifactError(f"{MODEL_FILE} holds {type(pipeline).__name__}, not a model")
    return pipeline, manifest


def newest_version(models_dir: Path) -> Path | None:
    """The newest complete version under models_dir (names sort by time)."""
    if not models_dir.is_dir():
        return None
    versions = sorted(p for p in models_dir.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name))
    return versions[-1] if versions else None
