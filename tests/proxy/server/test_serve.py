import gc

import pytest

from proxy.server.serve import GC_YOUNG_THRESHOLD, tune_gc

pytestmark = pytest.mark.quick


def test_tune_gc_freezes_what_exists_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (max(GC_YOUNG_THRESHOLD, before[0]), *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
