"""Provisioning of the stargazer fleet on OpenStack (start_instances.py is the command).

fleet (what should exist) + cloud (what exists, via openstacksdk) -> plan (the difference) -> apply (do it)
-> inventory (Ansible hosts from what exists). security.py holds the least-privilege rules, userdata/ the
cloud-init templates per role, runner.py one whole run with its exit codes.
"""
