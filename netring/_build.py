"""cffi (API mode) build script for ``netring._core``.

The C core is ordinary C in ``netring/csrc``: every ``*.c`` there is compiled, every ``*.h``
is included, and every ``*.cdef`` (the declarations Python may call, using ``...`` so the
compiler fills kernel struct layouts and constants) is concatenated, in file-name order.
Adding a C component therefore means adding files, never editing this script.

Build in place with ``pip install -e .`` (re-run after C changes) or run this file.
"""
import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")


def _files(pattern):
    return sorted(glob.glob(os.path.join(CSRC, pattern)))


ffibuilder = FFI()
ffibuilder.cdef("\n".join(open(p).read() for p in _files("*.cdef")))
ffibuilder.set_source(
    "netring._core",
    "\n".join('#include "%s"' % os.path.basename(p) for p in _files("*.h")),
    # setuptools wants sources relative to the project root (where setup.py runs).
    sources=[os.path.join("netring", "csrc", os.path.basename(p)) for p in _files("*.c")],
    include_dirs=[CSRC],
    extra_compile_args=["-O2", "-Wall", "-Wno-unused-function", "-D_GNU_SOURCE"],
)

if __name__ == "__main__":
    os.chdir(os.path.dirname(HERE))
    ffibuilder.compile(tmpdir=".", verbose=True)
