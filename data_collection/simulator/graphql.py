"""A small GraphQL subset for `POST /graphql`: the counts a collector batches, answered as GitHub does.

WHY a hand-written subset and not a GraphQL library: the simulator needs a dozen read-only fields of three
types, GitHub's error shapes, and its point cost; a 250-line parser/executor does that without a dependency.

Supported: queries (named or anonymous, with variable definitions and defaults), aliases, arguments
(variables, strings, numbers, booleans, enums, lists, objects), named fragments, inline fragments
(`... on Commit`), `__typename`. Root fields: `repository(owner:, name:)`, `user(login:)`,
`organization(login:)`, `repositoryOwner(login:)`, `rateLimit`, `viewer`. Types and fields:
- Repository: id, databaseId, name, nameWithOwner, description, url, homepageUrl, stargazerCount, forkCount,
  isFork, isArchived, isTemplate, isEmpty, diskUsage, createdAt, updatedAt, pushedAt, primaryLanguage{name},
  licenseInfo{key,name,spdxId}, owner, defaultBranchRef{name,target}, and the connections watchers, releases,
  stargazers, forks, issues, mentionableUsers, repositoryTopics (`totalCount` only).
- Commit (a ref's target): oid, history{totalCount}.
- User: login, id, databaseId, name, createdAt, followers, following, repositories (`totalCount`).
- Organization: login, id, databaseId, name, createdAt, repositories (no `followers`, as on GitHub).
Errors follow GitHub: an unknown field fails validation (HTTP 200, `errors`, no `data`); an unknown repository
is `null` with a NOT_FOUND error naming it. Cost: one point per 100 connections asked for, at least 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from data_collection.simulator import render
from data_collection.simulator.model import Owner
from data_collection.simulator.store import RepoStore

_TOKEN = re.compile(r'''
    (?P<skip>[\s,]+|\#[^\n]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[{}()\[\]:!$=@])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
''', re.VERBOSE)


class GraphQLError(Exception):
    def __init__(self, message: str, line: int = 1, column: int = 1, **extra: Any) -> None:
        super().__init__(message)
        self.line, self.column, self.extra = line, column, extra

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["locations"] = [{"line": self.line, "column": self.column}]
        out["message"] = str(self)
        return out


@dataclass
class Field:
    name: str
    alias: str
    args: dict[str, Any]
    selections: list[Any]
    line: int
    column: int


@dataclass
class Inline:
    type_condition: str | None
    selections: list[Any]


@dataclass
class Spread:
    name: str
    line: int
    column: int


@dataclass
class Var:
    name: str


@dataclass
class Document:
    operation: list[Any]
    variable_defaults: dict[str, Any]
    fragments: dict[str, tuple[str, list[Any]]] = field(default_factory=dict)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str, int, int]] = []
        pos, line, line_start = 0, 1, 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise GraphQLError(f"Parse error on \"{text[pos]}\"", line, pos - line_start + 1)
            kind = m.lastgroup or ""
            if kind != "skip":
                self.tokens.append((kind, m.group(), line, pos - line_start + 1))
            newlines = m.group().count("\n")
            if newlines:
                line += newlines
                line_start = pos + m.group().rfind("\n") + 1
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("eof", "", 0, 0)

    def take(self, value: str | None = None, kind: str | None = None) -> tuple[str, str, int, int]:
        tok = self.peek()
        wrong = (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind)
        if tok[0] == "eof" or wrong:
            shown = "end of file" if tok[0] == "eof" else f'"{tok[1]}"'
            raise GraphQLError(f"Parse error on {shown}" + (f" (expected {value})" if value else ""),
                               tok[2] or 1, tok[3] or 1)
        self.i += 1
        return tok

    def document(self) -> Document:
        operation: list[Any] | None = None
        defaults: dict[str, Any] = {}
        fragments: dict[str, tuple[str, list[Any]]] = {}
        while self.peek()[0] != "eof":
            tok = self.peek()
            if tok[1] == "{":
                operation = self.selection_set()
            elif tok[1] == "query":
                self.take()
                if self.peek()[0] == "name":
                    self.take()
                if self.peek()[1] == "(":
                    defaults = self.variable_definitions()
                operation = self.selection_set()
            elif tok[1] == "fragment":
                self.take()
                name = self.take(kind="name")[1]
                self.take("on")
                type_name = self.take(kind="name")[1]
                fragments[name] = (type_name, self.selection_set())
            elif tok[1] in ("mutation", "subscription"):
                raise GraphQLError(f"Schema is not configured for {tok[1]}s (the simulator is read-only)",
                                   tok[2], tok[3])
            else:
                raise GraphQLError(f'Parse error on "{tok[1]}"', tok[2], tok[3])
        if operation is None:
            raise GraphQLError("No operation given")
        return Document(operation, defaults, fragments)

    def variable_definitions(self) -> dict[str, Any]:
        defaults: dict[str, Any] = {}
        self.take("(")
        while self.peek()[1] != ")":
            self.take("$")
            name = self.take(kind="name")[1]
            self.take(":")
            self.type_ref()
            if self.peek()[1] == "=":
                self.take()
                defaults[name] = self.value()
        self.take(")")
        return defaults

    def type_ref(self) -> None:
        if self.peek()[1] == "[":
            self.take()
            self.type_ref()
            self.take("]")
        else:
            self.take(kind="name")
        if self.peek()[1] == "!":
            self.take()

    def selection_set(self) -> list[Any]:
        self.take("{")
        out: list[Any] = []
        while self.peek()[1] != "}":
            tok = self.peek()
            if tok[0] == "spread":
                self.take()
                if self.peek()[1] == "on":
                    self.take()
                    type_name = self.take(kind="name")[1]
                    out.append(Inline(type_name, self.selection_set()))
                elif self.peek()[1] == "{":
                    out.append(Inline(None, self.selection_set()))
                else:
                    name_tok = self.take(kind="name")
                    out.append(Spread(name_tok[1], name_tok[2], name_tok[3]))
                continue
            name_tok = self.take(kind="name")
            alias = name = name_tok[1]
            if self.peek()[1] == ":":
                self.take()
                name = self.take(kind="name")[1]
            args: dict[str, Any] = {}
            if self.peek()[1] == "(":
                self.take()
                while self.peek()[1] != ")":
                    arg = self.take(kind="name")[1]
                    self.take(":")
                    args[arg] = self.value()
                self.take(")")
            while self.peek()[1] == "@":  # directives are accepted and ignored
                self.take()
                self.take(kind="name")
                if self.peek()[1] == "(":
                    while self.take()[1] != ")":
                        pass
            selections = self.selection_set() if self.peek()[1] == "{" else []
            out.append(Field(name, alias, args, selections, name_tok[2], name_tok[3]))
        self.take("}")
        return out

    def value(self) -> Any:
        kind, text, line, column = self.take()
        if text == "$":
            return Var(self.take(kind="name")[1])
        if kind == "string":
            return bytes(text[1:-1], "utf-8").decode("unicode_escape")
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if text == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
            self.take("]")
            return items
        if text == "{":
            obj = {}
            while self.peek()[1] != "}":
                key = self.take(kind="name")[1]
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)
        raise GraphQLError(f'Parse error on "{text}"', line, column)


@dataclass
class Result:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]]
    cost: int


CONNECTIONS = {"watchers", "releases", "stargazers", "forks", "issues", "mentionableUsers",
               "repositoryTopics", "followers", "following", "repositories", "history"}


class Executor:
    def __init__(self, store: RepoStore, viewer: str = "simulator") -> None:
        self.store = store
        self.viewer = viewer
        #: rateLimit's values once the query is charged (set by the app, which owns the quotas)
        self.rate: dict[str, Any] = {}

    def run(self, query: str, variables: dict[str, Any] | None) -> Result:
        try:
            doc = _Parser(query).document()
        except GraphQLError as exc:
            return Result(None, [exc.as_dict()], 0)
        self._doc = doc
        self._vars = {**doc.variable_defaults, **(variables or {})}
        self._errors: list[dict[str, Any]] = []
        self._connections = 0
        try:
            data = self._select(("Query", None), doc.operation, [])
        except GraphQLError as exc:  # validation: no data at all, as GitHub answers
            return Result(None, [exc.as_dict()], 0)
        return Result(data, self._errors, max(1, round(self._connections / 100)))

    # -- execution -------------------------------------------------------------------------------------------
    def _arg(self, f: Field, name: str) -> Any:
        value = f.args.get(name)
        if isinstance(value, Var):
            if value.name not in self._vars:
                raise GraphQLError(f"Variable ${value.name} is used by anonymous query but not declared",
                                   f.line, f.column, extensions={"code": "variableNotDefined"})
            value = self._vars[value.name]
        return value

    def _flatten(self, type_name: str, selections: list[Any]) -> list[Field]:
        out: list[Field] = []
        for sel in selections:
            if isinstance(sel, Field):
                out.append(sel)
            elif isinstance(sel, Inline):
                if _applies(sel.type_condition, type_name):
                    out += self._flatten(type_name, sel.selections)
            else:
                frag = self._doc.fragments.get(sel.name)
                if frag is None:
                    raise GraphQLError(f"Fragment {sel.name} was used, but not defined", sel.line, sel.column,
                                       extensions={"code": "useAndDefineFragment", "fragmentName": sel.name})
                if _applies(frag[0], type_name):
                    out += self._flatten(type_name, frag[1])
        return out

    def _select(self, obj: tuple[str, Any], selections: list[Any], path: list[str]) -> dict[str, Any]:
        type_name, value = obj
        out: dict[str, Any] = {}
        for f in self._flatten(type_name, selections):
            out[f.alias] = self._resolve(type_name, value, f, [*path, f.alias])
        return out

    def _resolve(self, type_name: str, value: Any, f: Field, path: list[str]) -> Any:
        if f.name == "__typename":
            return type_name
        resolver = _FIELDS.get(type_name, {}).get(f.name)
        if resolver is None:
            raise GraphQLError(f"Field '{f.name}' doesn't exist on type '{type_name}'", f.line, f.column,
                               path=["query", *path],
                               extensions={"code": "undefinedField", "typeName": type_name,
                                           "fieldName": f.name})
        if f.name in CONNECTIONS:
            self._connections += 1
        result = resolver(self, value, f)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], str):
            if not f.selections:
                raise GraphQLError(f"Field must have selections (field '{f.name}' returns {result[0]} but "
                                   "has no selections.)", f.line, f.column)
            return self._select(result, f.selections, path)
        if result is _NOT_FOUND:
            self._errors.append({"type": "NOT_FOUND", "path": path,
                                 "locations": [{"line": f.line, "column": f.column}],
                                 "message": self._not_found_message})
            return None
        return result

    # -- roots -----------------------------------------------------------------------------------------------
    def repository(self, f: Field) -> Any:
        owner, name = self._arg(f, "owner"), self._arg(f, "name")
        known = isinstance(owner, str) and isinstance(name, str)
        repo = self.store.repo(f"{owner}/{name}") if known else None
        if repo is None:
            self._not_found_message = f"Could not resolve to a Repository with the name '{owner}/{name}'."
            return _NOT_FOUND
        return ("Repository", repo)

    def owner(self, f: Field, kind: str | None) -> Any:
        login = self._arg(f, "login")
        owner = self.store.owner(login) if isinstance(login, str) else None
        if owner is None or (kind is not None and owner.type != kind):
            what = kind or "RepositoryOwner"
            article = "an" if what[0] in "AEIOU" else "a"
            self._not_found_message = f"Could not resolve to {article} {what} with the login of '{login}'."
            return _NOT_FOUND
        return (owner.type, owner)


_NOT_FOUND = object()


def _applies(condition: str | None, type_name: str) -> bool:
    """Whether a fragment on `condition` applies to an object of `type_name` (interfaces included)."""
    if condition in (None, type_name):
        return True
    if condition in ("RepositoryOwner", "Actor", "Node", "ProfileOwner"):
        return type_name in ("User", "Organization")
    return condition == "GitObject" and type_name == "Commit"


def _count(n: int) -> tuple[str, int]:
    return ("Connection", n)


def _owner_obj(o: Owner) -> tuple[str, Owner]:
    return (o.type, o)


Resolver = Callable[[Executor, Any, Field], Any]


def _owner_fields(typename: str) -> dict[str, Resolver]:
    """The fields a user and an organization both have (the ``RepositoryOwner`` interface and more)."""
    return {
        "login": lambda _ex, o, _f: o.login,
        "id": lambda _ex, o, _f: render.node_id(typename, o.id),
        "databaseId": lambda _ex, o, _f: o.id,
        "name": lambda _ex, o, _f: o.name,
        "createdAt": lambda _ex, o, _f: render.iso(o.created_at),
        "repositories": lambda _ex, o, _f: _count(o.public_repos),
    }


_FIELDS: dict[str, dict[str, Resolver]] = {
    "Query": {
        "repository": lambda ex, _v, f: ex.repository(f),
        "user": lambda ex, _v, f: ex.owner(f, "User"),
        "organization": lambda ex, _v, f: ex.owner(f, "Organization"),
        "repositoryOwner": lambda ex, _v, f: ex.owner(f, None),
        "rateLimit": lambda ex, _v, _f: ("RateLimit", ex),
        "viewer": lambda ex, _v, _f: ("Viewer", ex.viewer),
    },
    "Viewer": {"login": lambda _ex, v, _f: v},
    "RateLimit": {  # filled in by the app after charging (see app.py); placeholders keep the shape
        "limit": lambda ex, _v, _f: getattr(ex, "rate", {}).get("limit"),
        "cost": lambda ex, _v, _f: getattr(ex, "rate", {}).get("cost"),
        "remaining": lambda ex, _v, _f: getattr(ex, "rate", {}).get("remaining"),
        "used": lambda ex, _v, _f: getattr(ex, "rate", {}).get("used"),
        "resetAt": lambda ex, _v, _f: getattr(ex, "rate", {}).get("resetAt"),
        "nodeCount": lambda _ex, _v, _f: 0,
    },
    "Connection": {"totalCount": lambda _ex, v, _f: v},
    "Repository": {
        "id": lambda _ex, r, _f: render.node_id("Repository", r.id),
        "databaseId": lambda _ex, r, _f: r.id,
        "name": lambda _ex, r, _f: r.name,
        "nameWithOwner": lambda _ex, r, _f: r.full_name,
        "description": lambda _ex, r, _f: r.description,
        "url": lambda _ex, r, _f: f"https://github.com/{r.full_name}",
        "homepageUrl": lambda _ex, r, _f: r.homepage,
        "stargazerCount": lambda _ex, r, _f: r.stargazers_count,
        "forkCount": lambda _ex, r, _f: r.forks_count,
        "isFork": lambda _ex, r, _f: r.fork,
        "isArchived": lambda _ex, r, _f: r.archived,
        "isTemplate": lambda _ex, r, _f: r.is_template,
        "isEmpty": lambda _ex, r, _f: r.empty,
        "diskUsage": lambda _ex, r, _f: r.size,
        "createdAt": lambda _ex, r, _f: render.iso(r.created_at),
        "updatedAt": lambda _ex, r, _f: render.iso(r.updated_at),
        "pushedAt": lambda _ex, r, _f: render.iso(r.pushed_at),
        "primaryLanguage": lambda _ex, r, _f: ("Language", r.language) if r.language else None,
        "licenseInfo": lambda _ex, r, _f: ("License", r.license_key) if r.license_key else None,
        "owner": lambda _ex, r, _f: _owner_obj(r.owner),
        "defaultBranchRef": lambda _ex, r, _f: None if r.empty else ("Ref", r),
        "watchers": lambda _ex, r, _f: _count(r.subscribers_count),
        "releases": lambda _ex, r, _f: _count(r.releases_count),
        "stargazers": lambda _ex, r, _f: _count(r.stargazers_count),
        "forks": lambda _ex, r, _f: _count(r.forks_count),
        "issues": lambda _ex, r, _f: _count(r.open_issues_count),
        "mentionableUsers": lambda _ex, r, _f: _count(r.contributors_count - r.anon_contributors),
        "repositoryTopics": lambda _ex, r, _f: _count(len(r.topics)),
    },
    "Language": {"name": lambda _ex, v, _f: v},
    "License": {
        "key": lambda _ex, v, _f: v,
        "name": lambda _ex, v, _f: render.LICENSES[v]["name"] if v in render.LICENSES else v,
        "spdxId": lambda _ex, v, _f: render.LICENSES[v]["spdx_id"] if v in render.LICENSES else None,
    },
    "Ref": {
        "name": lambda _ex, r, _f: r.default_branch,
        "target": lambda _ex, r, _f: ("Commit", r),
    },
    "Commit": {
        "oid": lambda _ex, r, _f: render.commit(r, 0, "")["sha"],
        "history": lambda _ex, r, _f: _count(r.commits_count),
    },
    "User": {
        **_owner_fields("User"),
        "followers": lambda _ex, o, _f: _count(o.followers),
        "following": lambda _ex, o, _f: _count(o.following),
    },
    "Organization": _owner_fields("Organization"),
}
