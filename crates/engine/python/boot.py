"""Installs the embedded `bifrost` package from sources handed over by Rust."""

import linecache
import sys
import types

_ORDER = ("errors", "models", "context", "decorators", "_internal", "_sdk")


def install(sources, native, bridge):
    pkg = types.ModuleType("bifrost")
    pkg.__path__ = []
    pkg.__package__ = "bifrost"
    pkg.__file__ = "<bifrost>/__init__.py"
    sys.modules["bifrost"] = pkg
    internal = None
    for short in _ORDER + ("__init__",):
        filename = f"<bifrost>/{short}.py"
        source = sources[short]
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        if short == "__init__":
            mod = pkg
        else:
            mod = types.ModuleType(f"bifrost.{short}")
            mod.__package__ = "bifrost"
            mod.__file__ = filename
            sys.modules[mod.__name__] = mod
        if short == "_internal":
            mod.__dict__["_native"] = native
            mod.__dict__["_bridge"] = bridge
            internal = mod
        if short == "_sdk":
            mod.__dict__["_i"] = internal
        exec(compile(source, filename, "exec"), mod.__dict__)
        if short not in ("__init__", "_internal"):
            setattr(pkg, short, mod)
    return internal
