"""The fuzz suite (marker ``fuzz``). A package, so that its conftest.py is ``fuzz.conftest`` and
does not take the place of tests/conftest.py in ``sys.modules`` (the helpers import
``from conftest import ...``)."""
