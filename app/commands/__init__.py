"""The command line's commands, one module per group; each adds its parsers with ``add(sub)``."""

from app.commands import describe, evaluate, info, results, studies

GROUPS = (evaluate, describe, results, studies, info)  # the order `glocal --help` lists them in
