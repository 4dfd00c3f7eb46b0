"""timm's model test suite over vssm's registry (tests/models/timm_suite.py says how it is loaded).

CI runs it over the `test_*` variants and one released variant per family; the rest of the registry is marked `slow`
(all of it: `pytest -m timm_suite tests/models/test_timm_suite.py`).
"""

from timm_suite import load_timm_test_models, registry_tests

_timm_tests = load_timm_test_models()
cfg_device = _timm_tests.cfg_device  # the fixture its config tests take
globals().update(registry_tests(_timm_tests))
