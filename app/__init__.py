"""The user-facing layer over flows, tasks and storage: the ``glocal`` command line and the HTML
report. The core package ``glocal`` never imports it (the import contract in pyproject.toml)."""
