-- The table etc/connectors.d/sensors-postgres.ini writes sensor readings into
-- (see danube-connect-sink-postgres(7)): JSON fields sensor, value and ts onto
-- columns of the same names, plus where each reading came from.
CREATE TABLE IF NOT EXISTS sensor_readings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor        text NOT NULL,
    value         double precision NOT NULL,
    ts            timestamptz NOT NULL,
    mqtt_topic    text,
    danube_topic  text NOT NULL,
    danube_offset bigint NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sensor_readings_sensor_ts ON sensor_readings (sensor, ts);
