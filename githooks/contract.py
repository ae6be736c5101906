"""What travels between ``deploy`` (development host) and the hooks (production hosts): the one home of the
deploy wire contract (docs/contracts.md §4). Both sides import these names; neither spells them itself.

Kept free of heavy imports: the hooks read it before anything else, and ``deploy`` runs without the hooks'
dependencies.
"""

from __future__ import annotations

from typing import Final

#: The branch whose push switches ``current`` (post-receive).
DEPLOY_REF: Final = "refs/heads/deploy"
#: Phase 1 of a multi-host deploy: ``refs/staging/<version>`` is validated by pre-receive, switched by nobody.
STAGING_PREFIX: Final = "refs/staging/"
#: The commit ``current`` serves: moved by post-receive after a switch succeeded; pushes to it are refused.
SERVING_REF: Final = "refs/stargazer/serving"
#: A validated candidate the workers score beside ``current`` (post-receive points ``shadow`` at it; deleting
#: the ref clears it). ``deploy --shadow`` pushes it after staging the same commit.
SHADOW_REF: Final = "refs/stargazer/shadow"
#: Pushed (at the shadow's commit, so no new objects) to ask for the shadow report; post-receive prints the
#: report and deletes the ref again.
SHADOW_REPORT_REF: Final = "refs/stargazer/shadow-report"
#: Every line a hook says to the pusher starts with this (git shows it as ``remote: stargazer: ...``).
HOOK_PREFIX: Final = "stargazer:"
#: The line that carries a host's shadow report: this, then one JSON object.
SHADOW_REPORT_LINE: Final = f"{HOOK_PREFIX} shadow-report "
#: ``git push -o actor=<user@host>``: who deployed, written into the host's deploy log.
ACTOR_OPTION: Final = "actor"
