# Copyright (c) bevt contributors. All rights reserved.
from types import SimpleNamespace

import mmaction
import pytest

from bevt.compat.versions import VERSION_RANGES, check_versions


def test_installed_versions_pass():
    check_versions(mmaction)


@pytest.mark.parametrize('version', ['1.1.0', '1.3.0'])
def test_out_of_range_mmaction_is_refused(version):
    low, high = VERSION_RANGES['mmaction']
    with pytest.raises(ImportError, match=f'mmaction=={version}'):
        check_versions(SimpleNamespace(__version__=version))
