"""GitHub's JSON shapes for the simulator's records: search items, full repositories, users, list items.

The key sets and nesting are those of the genuine responses in ../shared/data (81 keys per search item, nested
`owner` with 18 keys, `license` with key/name/spdx_id/url/node_id, `permissions`); tests compare them.
`api` is the base URL the simulator answers on, so every `*_url` field can be followed back to it.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from data_collection.simulator.model import Owner, Repo

GITHUB_API = "https://api.github.com"

#: GitHub's license objects (values copied from genuine responses).
LICENSES: dict[str, dict[str, Any]] = {
    "other": {"key": "other", "name": "Other", "spdx_id": "NOASSERTION", "url": None,
              "node_id": "MDc6TGljZW5zZTA="},
    "mit": {"key": "mit", "name": "MIT License", "spdx_id": "MIT", "node_id": "MDc6TGljZW5zZTEz"},
    "apache-2.0": {"key": "apache-2.0", "name": "Apache License 2.0", "spdx_id": "Apache-2.0",
                   "node_id": "MDc6TGljZW5zZTI="},
    "gpl-3.0": {"key": "gpl-3.0", "name": "GNU General Public License v3.0", "spdx_id": "GPL-3.0",
                "node_id": "MDc6TGljZW5zZTk="},
    "bsd-3-clause": {"key": "bsd-3-clause", "name": 'BSD 3-Clause "New" or "Revised" License',
                     "spdx_id": "BSD-3-Clause", "node_id": "MDc6TGljZW5zZTU="},
    "cc0-1.0": {"key": "cc0-1.0", "name": "Creative Commons Zero v1.0 Universal", "spdx_id": "CC0-1.0",
                "node_id": "MDc6TGljZW5zZTY="},
    "agpl-3.0": {"key": "agpl-3.0", "name": "GNU Affero General Public License v3.0", "spdx_id": "AGPL-3.0",
                 "node_id": "MDc6TGljZW5zZTE="},
    "unlicense": {"key": "unlicense", "name": "The Unlicense", "spdx_id": "Unlicense",
                  "node_id": "MDc6TGljZW5zZTE1"},
    "mpl-2.0": {"key": "mpl-2.0", "name": "Mozilla Public License 2.0", "spdx_id": "MPL-2.0",
                "node_id": "MDc6TGljZW5zZTE0"},
    "gpl-2.0": {"key": "gpl-2.0", "name": "GNU General Public License v2.0", "spdx_id": "GPL-2.0",
                "node_id": "MDc6TGljZW5zZTg="},
    "cc-by-4.0": {"key": "cc-by-4.0", "name": "Creative Commons Attribution 4.0 International",
                  "spdx_id": "CC-BY-4.0", "node_id": "MDc6TGljZW5zZTI1"},
    "lgpl-2.1": {"key": "lgpl-2.1", "name": "GNU Lesser General Public License v2.1", "spdx_id": "LGPL-2.1",
                 "node_id": "MDc6TGljZW5zZTEx"},
    "lgpl-3.0": {"key": "lgpl-3.0", "name": "GNU Lesser General Public License v3.0", "spdx_id": "LGPL-3.0",
                 "node_id": "MDc6TGljZW5zZTEy"},
    "cc-by-sa-4.0": {"key": "cc-by-sa-4.0",
                     "name": "Creative Commons Attribution Share Alike 4.0 International",
                     "spdx_id": "CC-BY-SA-4.0", "node_id": "MDc6TGljZW5zZTI2"},
    "bsd-2-clause": {"key": "bsd-2-clause", "name": 'BSD 2-Clause "Simplified" License',
                     "spdx_id": "BSD-2-Clause", "node_id": "MDc6TGljZW5zZTQ="},
    "isc": {"key": "isc", "name": "ISC License", "spdx_id": "ISC", "node_id": "MDc6TGljZW5zZTEw"},
    "wtfpl": {"key": "wtfpl", "name": "Do What The F*ck You Want To Public License", "spdx_id": "WTFPL",
              "node_id": "MDc6TGljZW5zZTE4"},
    "zlib": {"key": "zlib", "name": "zlib License", "spdx_id": "Zlib", "node_id": "MDc6TGljZW5zZTI3"},
}


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, ident: int) -> str:
    """GitHub's legacy global ids: base64 of "010:Repository507775", "012:Organization6764390", "04:User1"."""
    width = 2 if kind == "User" else 3
    return base64.b64encode(f"{len(kind):0{width}d}:{kind}{ident}".encode()).decode()


def license_object(key: str | None, api: str) -> dict[str, Any] | None:
    if key is None:
        return None
    lic = dict(LICENSES[key])
    lic.setdefault("url", f"{api}/licenses/{key}")
    return {"key": lic["key"], "name": lic["name"], "spdx_id": lic["spdx_id"], "url": lic["url"],
            "node_id": lic["node_id"]}


def simple_user(owner: Owner, api: str) -> dict[str, Any]:
    """The 18-key user object nested in repositories, commits and contributors."""
    u = f"{api}/users/{owner.login}"
    kind = "Organization" if owner.type == "Organization" else "User"
    return {
        "login": owner.login,
        "id": owner.id,
        "node_id": node_id(kind, owner.id),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{owner.id}?v=4",
        "gravatar_id": "",
        "url": u,
        "html_url": f"https://github.com/{owner.login}",
        "followers_url": f"{u}/followers",
        "following_url": f"{u}/following{{/other_user}}",
        "gists_url": f"{u}/gists{{/gist_id}}",
        "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{u}/subscriptions",
        "organizations_url": f"{u}/orgs",
        "repos_url": f"{u}/repos",
        "events_url": f"{u}/events{{/privacy}}",
        "received_events_url": f"{u}/received_events",
        "type": kind,
        "site_admin": False,
    }


def search_item(repo: Repo, api: str) -> dict[str, Any]:
    """One item of /search/repositories (81 keys, `score` last), in GitHub's key order."""
    if repo.raw is not None:
        return _rebase(repo.raw, api)
    full = repo.full_name
    r = f"{api}/repos/{full}"
    html = f"https://github.com/{full}"
    return {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": full,
        "private": False,
        "owner": simple_user(repo.owner, api),
        "html_url": html,
        "description": repo.description,
        "fork": repo.fork,
        "url": r,
        "forks_url": f"{r}/forks",
        "keys_url": f"{r}/keys{{/key_id}}",
        "collaborators_url": f"{r}/collaborators{{/collaborator}}",
        "teams_url": f"{r}/teams",
        "hooks_url": f"{r}/hooks",
        "issue_events_url": f"{r}/issues/events{{/number}}",
        "events_url": f"{r}/events",
        "assignees_url": f"{r}/assignees{{/user}}",
        "branches_url": f"{r}/branches{{/branch}}",
        "tags_url": f"{r}/tags",
        "blobs_url": f"{r}/git/blobs{{/sha}}",
        "git_tags_url": f"{r}/git/tags{{/sha}}",
        "git_refs_url": f"{r}/git/refs{{/sha}}",
        "trees_url": f"{r}/git/trees{{/sha}}",
        "statuses_url": f"{r}/statuses/{{sha}}",
        "languages_url": f"{r}/languages",
        "stargazers_url": f"{r}/stargazers",
        "contributors_url": f"{r}/contributors",
        "subscribers_url": f"{r}/subscribers",
        "subscription_url": f"{r}/subscription",
        "commits_url": f"{r}/commits{{/sha}}",
        "git_commits_url": f"{r}/git/commits{{/sha}}",
        "comments_url": f"{r}/comments{{/number}}",
        "issue_comment_url": f"{r}/issues/comments{{/number}}",
        "contents_url": f"{r}/contents/{{+path}}",
        "compare_url": f"{r}/compare/{{base}}...{{head}}",
        "merges_url": f"{r}/merges",
        "archive_url": f"{r}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{r}/downloads",
        "issues_url": f"{r}/issues{{/number}}",
        "pulls_url": f"{r}/pulls{{/number}}",
        "milestones_url": f"{r}/milestones{{/number}}",
        "notifications_url": f"{r}/notifications{{?since,all,participating}}",
        "labels_url": f"{r}/labels{{/name}}",
        "releases_url": f"{r}/releases{{/id}}",
        "deployments_url": f"{r}/deployments",
        "created_at": iso(repo.created_at),
        "updated_at": iso(repo.updated_at),
        "pushed_at": iso(repo.pushed_at),
        "git_url": f"git://github.com/{full}.git",
        "ssh_url": f"git@github.com:{full}.git",
        "clone_url": f"https://github.com/{full}.git",
        "svn_url": html,
        "homepage": repo.homepage,
        "size": repo.size,
        "stargazers_count": repo.stargazers_count,
        "watchers_count": repo.stargazers_count,  # GitHub's alias of the stars, not the watchers
        "language": repo.language,
        "has_issues": repo.has_issues,
        "has_projects": repo.has_projects,
        "has_downloads": True,
        "has_wiki": repo.has_wiki,
        "has_pages": repo.has_pages,
        "has_discussions": repo.has_discussions,
        "forks_count": repo.forks_count,
        "mirror_url": None,
        "archived": repo.archived,
        "disabled": False,
        "open_issues_count": repo.open_issues_count,
        "license": license_object(repo.license_key, api),
        "allow_forking": True,
        "is_template": repo.is_template,
        "web_commit_signoff_required": False,
        "topics": list(repo.topics),
        "visibility": "public",
        "forks": repo.forks_count,
        "open_issues": repo.open_issues_count,
        "watchers": repo.stargazers_count,
        "default_branch": repo.default_branch,
        "permissions": {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True},
        "score": 1.0,
    }


def full_repo(repo: Repo, api: str, authenticated: bool) -> dict[str, Any]:
    """GET /repos/{owner}/{name}: the search item without `score`, plus what only this endpoint tells."""
    data = search_item(repo, api)
    data.pop("score", None)
    if not authenticated:
        data.pop("permissions", None)  # GitHub shows the caller's permissions only to a known caller
    else:
        data["temp_clone_token"] = ""
    if repo.owner.type == "Organization":
        data["organization"] = dict(data["owner"])
    data["network_count"] = repo.network_count
    data["subscribers_count"] = repo.subscribers_count
    return data


def user(owner: Owner, api: str) -> dict[str, Any]:
    """GET /users/{login} (for organizations too, as GitHub answers it)."""
    data = simple_user(owner, api)
    data.update({
        "name": owner.name,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": owner.public_repos,
        "public_gists": 0 if owner.type == "Organization" else owner.id % 17,
        "followers": owner.followers,
        "following": owner.following,
        "created_at": iso(owner.created_at),
        "updated_at": iso(max(owner.created_at, owner.created_at + (owner.id % 997) * 86_400)),
    })
    if owner.type == "Organization":
        data.pop("hireable")
    return data


def _sha(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()  # noqa: S324 - an id, not security


def _pseudo_user(repo: Repo, index: int, api: str) -> Owner:
    if index == 0 and repo.owner.type == "User":  # organizations do not commit; their members do
        return repo.owner
    ident = 10_000_000 + (repo.id * 7919 + index * 104_729) % 190_000_000
    return Owner(login=f"dev{ident:x}", id=ident, type="User", followers=0, following=0, public_repos=0,
                 created_at=repo.created_at)


#: GitHub links only the first 500 author emails of a repository to users; the rest are anonymous.
LINKED_CONTRIBUTORS = 500


def linked_contributors(repo: Repo) -> int:
    """How many contributors /contributors lists without anon=1."""
    return min(LINKED_CONTRIBUTORS, repo.contributors_count - repo.anon_contributors)


def contributor(repo: Repo, index: int, api: str) -> dict[str, Any]:
    """Item `index` (0-based) of /contributors?anon=1: linked users first, then anonymous contributors."""
    total = repo.contributors_count
    contributions = max(1, int(repo.commits_count * 0.5 / (index + 1) ** 1.1 / max(1.0, total ** 0.1)))
    if index >= linked_contributors(repo):
        return {"email": f"anon{index}@users.noreply.github.com", "name": f"Anonymous {index}",
                "type": "Anonymous", "contributions": contributions}
    data = simple_user(_pseudo_user(repo, index, api), api)
    data["contributions"] = contributions
    return data


def commit(repo: Repo, index: int, api: str) -> dict[str, Any]:
    """Item `index` (0 = newest) of /commits."""
    sha = _sha(repo.id, "commit", index)
    parent = _sha(repo.id, "commit", index + 1)
    tree = _sha(repo.id, "tree", index)
    span = max(1, repo.pushed_at - repo.created_at)
    when = iso(repo.pushed_at - int(span * index / max(1, repo.commits_count)))
    author = _pseudo_user(repo, index % max(1, repo.contributors_count - repo.anon_contributors), api)
    person = {"name": author.login, "email": f"{author.login}@users.noreply.github.com", "date": when}
    r = f"{api}/repos/{repo.full_name}"
    return {
        "sha": sha,
        "node_id": node_id("Commit", repo.id)[:-2] + sha[:6],
        "commit": {
            "author": person,
            "committer": person,
            "message": f"Commit {repo.commits_count - index} of {repo.name}",
            "tree": {"sha": tree, "url": f"{r}/git/trees/{tree}"},
            "url": f"{r}/git/commits/{sha}",
            "comment_count": 0,
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                             "verified_at": None},
        },
        "url": f"{r}/commits/{sha}",
        "html_url": f"https://github.com/{repo.full_name}/commit/{sha}",
        "comments_url": f"{r}/commits/{sha}/comments",
        "author": simple_user(author, api),
        "committer": simple_user(author, api),
        "parents": [] if index == repo.commits_count - 1 else [
            {"sha": parent, "url": f"{r}/commits/{parent}",
             "html_url": f"https://github.com/{repo.full_name}/commit/{parent}"}
        ],
    }


def release(repo: Repo, index: int, api: str) -> dict[str, Any]:
    """Item `index` (0 = newest) of /releases."""
    number = repo.releases_count - index
    ident = 1_000_000 + (repo.id % 100_000) * 1000 + number
    span = max(1, repo.pushed_at - repo.created_at)
    when = iso(repo.created_at + int(span * number / max(1, repo.releases_count)))
    r = f"{api}/repos/{repo.full_name}"
    tag = f"v{number // 10}.{number % 10}.0"
    return {
        "url": f"{r}/releases/{ident}",
        "assets_url": f"{r}/releases/{ident}/assets",
        "upload_url": f"https://uploads.github.com/repos/{repo.full_name}/releases/{ident}/assets{{?name,label}}",
        "html_url": f"https://github.com/{repo.full_name}/releases/tag/{tag}",
        "id": ident,
        "author": simple_user(repo.owner, api),
        "node_id": node_id("Release", ident),
        "tag_name": tag,
        "target_commitish": repo.default_branch,
        "name": tag,
        "draft": False,
        "prerelease": False,
        "created_at": when,
        "published_at": when,
        "assets": [],
        "tarball_url": f"{r}/tarball/{tag}",
        "zipball_url": f"{r}/zipball/{tag}",
        "body": f"Release {tag}",
    }


def _rebase(raw: dict[str, Any], api: str) -> dict[str, Any]:
    """A genuine item with its api.github.com URLs pointed at the simulator (so they can be followed)."""
    if api == GITHUB_API:
        return dict(raw)

    def walk(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(GITHUB_API):
            return api + value[len(GITHUB_API):]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(raw)
