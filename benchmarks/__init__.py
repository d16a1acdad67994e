"""Benchmarks (not tests): run as modules, e.g. ``python -m benchmarks.run_all``."""


def write_json(result, out=None):
    """``result`` as indented JSON to the file ``out`` (its folder created),
    or to standard output when ``out`` is None."""
    import json
    import os
    import sys

    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
    else:
        json.dump(result, sys.stdout, indent=1)
        print()
