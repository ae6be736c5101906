"""``make rehearsal``: the whole fleet on one machine, converged and exercised the way an operator would.

Six network-namespace hosts (orchestration, development = Ray head, two Ray workers, two production hosts),
each with its own address and its own sshd, are converged by ``playbooks/site.yml`` over SSH from this
machine, which acts as the orchestration controller. Then the development host collects, tunes on Ray and
deploys by ``git push``; predictions come back through each production host's nginx; ``status.yml`` reports
the fleet; two fault drills run. Stages: ``python -m rehearsal --help``.
"""
