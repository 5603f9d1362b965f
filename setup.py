"""Only here because cffi's ``cffi_modules`` is a setuptools keyword; metadata lives in pyproject.toml."""
from setuptools import setup

setup(cffi_modules=["netring/_build.py:ffibuilder"])
