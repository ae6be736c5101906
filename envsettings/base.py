"""The base class of every settings class: pydantic-settings validates, ``from_env`` is the one entry point.

Why a base class: the five settings modules then agree on what an environment variable is (its name is the
field's ``validation_alias``, written out in full so that a grep finds it), on what an empty value means
(unset, unless a field says otherwise), and on how a bad value is reported: ONE line that names the variable,
with the value only when it is not a secret (a field with ``repr=False``).

Why the environment is read only in ``from_env``: a class built by hand (``GitHubSettings(api_url=...)``) is
exactly what the code says, never silently topped up from the environment of the process that built it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class SettingsError(ValueError):
    """A configuration value is missing or unusable; its message is one line naming the variable."""


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' own environment source, reading a given mapping instead of ``os.environ``.

    Only fields that name their variable (``validation_alias``) are read: every other field is code-only.
    """

    def __init__(self, settings_cls: type[EnvSettings], environ: Mapping[str, str]) -> None:
        keep_empty = settings_cls.empty_is_a_value
        self._environ = {  # only variables: a source like git config's "stargazer.keep" is never one
            k: v for k, v in environ.items() if _ENV_NAME.match(k) and (v != "" or k in keep_empty)
        }
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ

    def __call__(self) -> dict[str, Any]:
        cls = self.settings_cls
        names = {name for field in cls.model_fields for name in sources_of(cls, field)}
        return {key: value for key, value in super().__call__().items() if key in names}


class EnvSettings(BaseSettings):
    """Frozen settings whose fields name their environment variable in ``validation_alias``."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        validate_by_name=True,
        validate_by_alias=True,
        arbitrary_types_allowed=True,
        extra="forbid",
    )

    #: Variables whose empty value means something (e.g. "show no examples"), not "unset".
    empty_is_a_value: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment is read by from_env only

    @classmethod
    def env_values(cls, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The raw values of this class's variables that are set in ``environ`` (default: os.environ)."""
        return _MappingEnvSource(cls, os.environ if environ is None else environ)()

    @classmethod
    def display_name(cls, source: str) -> str:
        """How an error names a source (a class with other sources than variables words them here)."""
        return source

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> Self:
        """Validate ``values`` (keyed by variable or field name); a bad one raises SettingsError, one line."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(describe_error(cls, exc)) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read this class's variables from ``environ`` (default: os.environ) and validate them."""
        return cls.build(cls.env_values(environ))


def sources_of(cls: type[EnvSettings], field: str) -> list[str]:
    """Where ``field`` is read from, first match wins: its variable, or several names (``AliasChoices``)."""
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return []


def env_name(cls: type[EnvSettings], field: str) -> str:
    """The environment variable of ``field``, else its first source; a code-only field's own name."""
    names = sources_of(cls, field)
    return next((name for name in names if _ENV_NAME.match(name)), names[0] if names else field)


def _field_of(cls: type[EnvSettings], key: str) -> str | None:
    for name in cls.model_fields:
        if key == name or key in sources_of(cls, name):
            return name
    return None


def _is_secret(cls: type[EnvSettings], key: str) -> bool:
    field = _field_of(cls, key)
    return True if field is None else cls.model_fields[field].repr is False  # unknown: say nothing


def describe_error(cls: type[EnvSettings], exc: ValidationError) -> str:
    """The first problem of a ValidationError as one line: ``NAME: what is wrong[, got 'value']``."""
    error = exc.errors(include_url=False)[0]
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    loc = error.get("loc") or ()
    if not loc:
        return message.splitlines()[0]
    key = str(loc[0])
    field = _field_of(cls, key)
    if error["type"] == "missing" and field is not None:
        names = sources_of(cls, field) or [field]
        return f"{' / '.join(cls.display_name(name) for name in names)} is not set"
    name = cls.display_name(env_name(cls, key) if key in cls.model_fields else key)
    given = error.get("input")
    # A project validator words its own message (and quotes only what is safe to show).
    quiet = error["type"] == "value_error" or _is_secret(cls, key) or not isinstance(given, str)
    shown = "" if quiet else f", got {given!r}"
    return f"{name}: {message}{shown}".splitlines()[0]
