"""Load a city's reference dataset into PostGIS: the real extract, the synthesized layers and
the refined DEM. One transaction: a failed load leaves the database as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import orjson
import pandas as pd
import psycopg
import shapely

from gis_core.application import SynthContext, installed
from gis_core.bulk import copy_frame
from gis_core.crs import CGCS2000_GK_CM114
from gis_core.db import connect, migrate
from gis_core.errors import Conflict
from gis_core.settings import Settings

# Load order respects foreign keys; truncation runs in reverse.
TABLES = (
    "ref.admin_area",
    "ref.river",
    "ref.town",
    "ref.village",
    "ref.road_node",
    "ref.road",
    "ref.population_cell",
    "ref.poi",
    "env.enterprise",
    "env.pollution_source",
    "iot.monitoring_site",
    "iot.device",
    "ops.unit",
    "registry.parcel",
    "registry.mining_right",
)
# Where a frame's name differs from its table's.
FRAME_TABLE = {
    "road": "ref.road",
    "road_node": "ref.road_node",
    "poi": "ref.poi",
    "population_cell": "ref.population_cell",
    "enterprise": "env.enterprise",
    "pollution_source": "env.pollution_source",
    "monitoring_site": "iot.monitoring_site",
    "device": "iot.device",
    "unit": "ops.unit",
    "parcel": "registry.parcel",
    "mining_right": "registry.mining_right",
    "village": "ref.village",
}
# Operational records a reload would orphan: refuse unless forced.
OPERATIONAL = ("ops.incident", "iot.alarm", "iot.device_state")

Progress = Callable[[str], None]


@dataclass
class LoadReport:
    city: str
    counts: dict[str, int] = field(default_factory=dict)
    dem_path: Path | None = None


def city_facts(city_dir: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((city_dir / "city.json").read_text())
    return facts


def real_frames(city_dir: Path) -> dict[str, gpd.GeoDataFrame]:
    """The real extract as frames shaped like their tables."""
    facts = city_facts(city_dir)
    districts = gpd.read_file(city_dir / "districts.geojson")
    city = gpd.read_file(city_dir / "city.geojson")
    metric_areas = districts.to_crs(CGCS2000_GK_CM114).area / 1e6
    admin = pd.DataFrame(
        {
            "code": districts["code"].astype(str),
            "parent_code": str(facts["code"]),
            "level": "district",
            "name_zh": districts["name_zh"],
            "name_en": districts["name_en"],
            "population_2020": districts["population_2020"].astype(int),
            "area_km2": metric_areas.round(3),
            "geom": [_multi(g) for g in districts.geometry.values],
        }
    )
    city_row = pd.DataFrame(
        {
            "code": [str(facts["code"])],
            "parent_code": [None],
            "level": ["city"],
            "name_zh": [facts["name_zh"]],
            "name_en": [facts["name_en"]],
            "population_2020": [int(districts["population_2020"].sum())],
            "area_km2": [round(float(metric_areas.sum()), 3)],
            "geom": [_multi(city.geometry.values[0])],
        }
    )
    rivers = gpd.read_file(city_dir / "rivers.geojson")
    river = pd.DataFrame(
        {
            "id": range(1, len(rivers) + 1),
            "name_zh": rivers.get("name_zh"),
            "name_en": rivers.get("name_en"),
            "source": rivers.get("source"),
            "geom": [_multi_line(g) for g in rivers.geometry.values],
        }
    )
    towns = gpd.read_file(city_dir / "towns.geojson")
    town = pd.DataFrame(
        {
            "id": range(1, len(towns) + 1),
            "name_zh": towns.get("name_zh"),
            "name_en": towns.get("name"),
            "kind": towns["kind"],
            "district_code": towns["district_code"].astype(str),
            "population": towns["population"].astype("Int64"),
            "source": "GeoNames (CC-BY 4.0) #" + towns["geonameid"].astype(str),
            "geom": towns.geometry.values,
        }
    )
    return {
        "ref.admin_area": pd.concat([city_row, admin], ignore_index=True),
        "ref.river": river,
        "ref.town": town,
    }


def _multi(geom: Any) -> Any:
    return geom if geom.geom_type == "MultiPolygon" else shapely.MultiPolygon([geom])


def _multi_line(geom: Any) -> Any:
    return geom if geom.geom_type == "MultiLineString" else shapely.MultiLineString([geom])


def has_operational_data(conn: psycopg.Connection) -> list[str]:
    busy = []
    for table in OPERATIONAL:
        row = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()
        if row and row[0]:
            busy.append(table)
    return busy


def is_loaded(conn: psycopg.Connection, city: str) -> bool:
    row = conn.execute("SELECT 1 FROM ref.dataset WHERE city = %s", (city,)).fetchone()
    return row is not None


def ensure_dem(city: str, city_dir: Path, out_dir: Path, resolution_m: float, seed: int) -> Path:
    """The refined DEM for this resolution, made once from the ETOPO1 window and the rivers."""
    from gis_core.terrain import refine_dem

    facts = city_facts(city_dir)
    out = out_dir / f"{city}_{round(resolution_m)}m_seed{seed}.tif"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    rivers = gpd.read_file(city_dir / "rivers.geojson").geometry.values
    tmp = out.with_suffix(".partial.tif")
    refine_dem(
        city_dir / "etopo1_window.tif",
        tmp,
        resolution_m=resolution_m,
        bounds_wgs84=facts["bbox"],
        rivers=rivers,
        seed=seed,
    )
    tmp.replace(out)
    return out


def load_reference(
    conn: psycopg.Connection,
    city_dir: Path,
    *,
    city: str,
    seed: int,
    scale: float,
    dem_path: Path | None,
    force: bool = False,
    progress: Progress | None = None,
    apps: str | None = None,
) -> LoadReport:
    """Replace the reference dataset in one transaction (the caller commits): the core's
    tables, then what each installed application (``apps``, default: the settings') adds."""
    from layers.reference.synth import synthesize

    busy = has_operational_data(conn)
    if busy and not force:
        raise Conflict(
            "the database holds operational records (" + ", ".join(busy) + "); a reload would "
            "orphan them: use --force to replace the reference data anyway"
        )
    note = progress or (lambda _: None)
    note("reading the real extract")
    frames: dict[str, pd.DataFrame] = dict(real_frames(city_dir))
    note(f"synthesizing (seed {seed}, scale {scale})")
    kinds = installed(apps).kinds
    for name, frame in synthesize(city_dir, seed=seed, scale=scale, kinds=kinds).items():
        if name in FRAME_TABLE:
            frames[FRAME_TABLE[name]] = frame
    report = LoadReport(city=city, dem_path=dem_path)
    conn.execute(
        "TRUNCATE " + ", ".join(reversed(TABLES)) + ", ops.assignment, ops.incident_event,"
        " ops.incident, iot.alarm, iot.device_state CASCADE"
    )
    for table in TABLES:
        frame = frames.get(table)
        if frame is None:
            continue
        note(f"loading {table} ({len(frame):,} rows)")
        geometry = "geom" if "geom" in frame.columns else None
        report.counts[table] = copy_frame(conn, table, frame, geometry=geometry)
    for table in TABLES:
        # Rows came with their ids: move identity sequences past them for later inserts.
        seq = conn.execute(
            "SELECT pg_get_serial_sequence(%s, 'id') FROM information_schema.columns"
            " WHERE table_schema || '.' || table_name = %s AND column_name = 'id'",
            (table, table),
        ).fetchone()
        if seq and seq[0]:
            conn.execute(
                f"SELECT setval(%s, greatest(1, (SELECT coalesce(max(id), 0) FROM {table})))",
                (seq[0],),
            )
        conn.execute(f"ANALYZE {table}")
    # Then each installed application's own reference data, on top of the core's.
    context = SynthContext(city_dir=city_dir, city=city, seed=seed, scale=scale, dem_path=dem_path)
    for application in installed(apps):
        if application.synthesize is not None:
            note(f"synthesizing {application.name}'s reference data")
            for table, rows in application.synthesize(conn, context).items():
                report.counts[table] = rows
    conn.execute(
        """
        INSERT INTO ref.dataset (city, seed, scale, dem_path, counts)
        VALUES (%s, %s, %s, %s, %s::jsonb)
        ON CONFLICT (city) DO UPDATE SET seed = excluded.seed, scale = excluded.scale,
            loaded_at = now(), dem_path = excluded.dem_path, counts = excluded.counts
        """,
        (
            city,
            seed,
            scale,
            str(dem_path) if dem_path else None,
            orjson.dumps(report.counts).decode(),
        ),
    )
    return report


def load_dataset(
    settings: Settings,
    *,
    scale: float | None = None,
    seed: int | None = None,
    dem_resolution: float | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> LoadReport:
    """Migrate, refine the DEM (once per resolution) and load the reference dataset, with the
    settings' defaults for what is not given."""
    say = progress or (lambda msg: None)
    scale = settings.data.scale if scale is None else scale
    seed = settings.data.seed if seed is None else seed
    resolution = dem_resolution or settings.data.dem_resolution_m
    if not 0 < scale <= 1:
        raise ValueError("--scale must be in (0, 1]")
    if not 10 <= resolution <= 2000:
        raise ValueError("--dem-resolution must be between 10 and 2000 metres")
    city_dir = settings.platform.data_dir
    if not (city_dir / "city.json").exists():
        raise FileNotFoundError(f"no city data in {city_dir} (CHANGZHI_DATA_DIR)")
    migrate(settings.sqlalchemy_url, settings.platform.apps)
    say("refining the DEM (once per resolution)")
    dem = ensure_dem(
        settings.platform.city, city_dir, settings.platform.var_dir / "dem", resolution, seed
    )
    with connect(settings.database_url) as conn:
        report = load_reference(
            conn,
            city_dir,
            city=settings.platform.city,
            seed=seed,
            scale=scale,
            dem_path=dem,
            force=force,
            progress=say,
            apps=settings.platform.apps,
        )
        conn.commit()
    return report
