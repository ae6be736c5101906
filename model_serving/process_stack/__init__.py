"""The serving stack started as plain processes in a private run directory, for tests and benchmarks only.

Hosts (and `make demo`, `make serve`) run the stack through the Ansible roles and their supervisor programs;
this package exists because a test or a benchmark needs many isolated stacks side by side on one machine, each
on its own ports and directories, started and stopped in seconds. It renders the same nginx template and runs
the same gunicorn configuration and Celery app as the roles do, and is kept apart from the web app's package
(`model_serving.production_server`) so that nothing served depends on it.
"""
