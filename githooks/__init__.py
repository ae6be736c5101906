"""Server-side git hooks that turn ``git push`` of a model into a safe, atomic, reversible deployment.

The executable files ``pre-receive`` and ``post-receive`` next to this package are thin shell shims: they run
``python -m githooks.prereceive`` / ``githooks.postreceive`` with the deployed application's own interpreter
(found through ``STARGAZER_APP_DIR``), so a model is judged by the exact serving code that will load it.
``install.sh`` / ``githooks.install`` create the bare repository with these hooks and their configuration.
"""
