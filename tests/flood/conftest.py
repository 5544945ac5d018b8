"""The city prepared once for the flood tests that need the database."""

from __future__ import annotations

import pytest

from apps.flood.preparation import CityHydrology, prepare_city
from gis_core.db import connect


@pytest.fixture(scope="session")
def prepared(reference: object, db_url: str, settings) -> CityHydrology:
    with connect(db_url) as conn:
        report = prepare_city(conn, settings.platform.var_dir)
        conn.commit()
    return report
