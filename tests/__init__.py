"""qgen's test suite, laid out like the package: ``tests/<subpackage>/`` tests ``qgen/<subpackage>/``; the
tests of qgen's top-level modules and of behaviour across the package sit here. Every folder is a package
(``tests.backends``, ...), so test files in different folders may share a name. What the tests share is in
``helpers.py`` (running ``qgen`` as a subprocess, paths) and ``conftest.py`` (the fixtures)."""
