"""Every module of both packages, and every public class, function and method its ``__all__`` names, has a docstring."""
import importlib
import inspect
import pkgutil

import netring
import netring_testkit


def _undocumented():
    out = []
    for pkg in (netring, netring_testkit):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name in ("netring._build", "netring._core"):
                continue
            mod = importlib.import_module(info.name)
            if not mod.__doc__:
                out.append(info.name)
            for name in getattr(mod, "__all__", ()):
                obj = getattr(mod, name)
                if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                    continue
                if not inspect.getdoc(obj):
                    out.append("%s.%s" % (info.name, name))
                if inspect.isclass(obj) and not issubclass(obj, tuple):   # namedtuple fields document themselves
                    out.extend("%s.%s.%s" % (info.name, name, k) for k, v in vars(obj).items()
                               if not k.startswith("_") and (inspect.isfunction(v) or isinstance(v, property))
                               and not inspect.getdoc(v))
    return out


def test_every_public_name_has_a_docstring():
    assert _undocumented() == []
