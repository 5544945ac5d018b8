"""SQL of the migrations that is DDL rather than model structure, kept whole to be read."""

# Telemetry history, partitioned by UTC day. A retransmitted reading has the same device, time
# and counter, so the unique key (NULLS NOT DISTINCT: a device without seq de-duplicates on
# device + ts) makes writes idempotent. The default partition catches a reading whose day has
# no partition yet, so nothing is ever refused for want of one.
TELEMETRY = """
CREATE TABLE iot.telemetry (
    device_id   text        NOT NULL,
    kind        text        NOT NULL,
    ts          timestamptz NOT NULL,
    seq         bigint,
    received_at timestamptz NOT NULL DEFAULT now(),
    geom        geometry(Point, 4326),
    reading     jsonb       NOT NULL
) PARTITION BY RANGE (ts);
CREATE UNIQUE INDEX uq_telemetry_device_ts_seq
    ON iot.telemetry (device_id, ts, seq) NULLS NOT DISTINCT;
CREATE INDEX ix_telemetry_geom ON iot.telemetry USING gist (geom);
CREATE TABLE iot.telemetry_default PARTITION OF iot.telemetry DEFAULT;
"""

PARTITION_FUNCTIONS = """
CREATE FUNCTION iot.ensure_telemetry_partitions(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    created integer := 0;
    part text;
    lo timestamptz;
    hi timestamptz;
BEGIN
    FOR d IN SELECT generate_series(p_from, p_to, interval '1 day')::date LOOP
        part := format('telemetry_%s', to_char(d, 'YYYYMMDD'));
        CONTINUE WHEN to_regclass(format('iot.%I', part)) IS NOT NULL;
        lo := (d::timestamp AT TIME ZONE 'UTC');
        hi := ((d + 1)::timestamp AT TIME ZONE 'UTC');
        -- Rows that landed in the default partition for this day move into the new one.
        LOCK TABLE iot.telemetry_default IN ACCESS EXCLUSIVE MODE;
        CREATE TEMP TABLE IF NOT EXISTS _moving (LIKE iot.telemetry) ON COMMIT DROP;
        WITH moved AS (
            DELETE FROM iot.telemetry_default WHERE ts >= lo AND ts < hi RETURNING *
        )
        INSERT INTO _moving SELECT * FROM moved;
        EXECUTE format(
            'CREATE TABLE iot.%I PARTITION OF iot.telemetry FOR VALUES FROM (%L) TO (%L)',
            part, lo, hi
        );
        INSERT INTO iot.telemetry SELECT * FROM _moving;
        TRUNCATE _moving;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

CREATE FUNCTION iot.drop_telemetry_partitions(p_before date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = 'iot' AND p.relname = 'telemetry'
          AND c.relname ~ '^telemetry_[0-9]{8}$'
          AND to_date(substr(c.relname, 11), 'YYYYMMDD') < p_before
    LOOP
        EXECUTE format('DROP TABLE iot.%I', r.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;
"""

DEPARTMENTS = [
    ("command", "指挥中心", "Command Center"),
    ("fire", "消防救援", "Fire and Rescue"),
    ("medical", "120急救", "Emergency Medical (120)"),
    ("police", "公安", "Police"),
    ("emergency", "应急管理", "Emergency Management"),
    ("water", "水务", "Water Resources"),
    ("environment", "生态环境", "Ecology and Environment"),
    ("land", "自然资源和规划", "Natural Resources and Planning"),
    ("traffic", "交通运输", "Transport"),
    ("statistics", "统计", "Statistics"),
    ("hotline", "12345热线", "12345 Citizen Hotline"),
]
