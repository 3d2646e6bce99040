CREATE SEQUENCE schema_version_seq INCREMENT BY 1 START WITH 1;
CREATE TABLE schema_version (
    id integer DEFAULT nextval('schema_version_seq'::regclass) NOT NULL,
    version character varying(10) NOT NULL,
    script character varying(255) NOT NULL,
    checksum character varying(128),
    installed_by character varying(63) NOT NULL,
    started_at timestamp without time zone DEFAULT now(),
    ended_at timestamp without time zone,
    state character varying(15) NOT NULL,
    current boolean NOT NULL,
    comment text DEFAULT ''::text,
    CONSTRAINT schema_version_primary_key PRIMARY KEY (id)
);
CREATE TABLE vdc_options (
    option_id SERIAL PRIMARY KEY,
    option_name VARCHAR(100) NOT NULL,
    option_value VARCHAR(4000) NOT NULL,
    version VARCHAR(40) NOT NULL DEFAULT 'general',
    default_value VARCHAR(4000)
);
CREATE TABLE items (
    id SERIAL PRIMARY KEY,
    name VARCHAR(40) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE upgrade_log (
    version VARCHAR(10) PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE hook_runs (
    id SERIAL PRIMARY KEY,
    kind TEXT NOT NULL
);
-- as in a pg_dump-made base: the next files must not inherit this
SELECT pg_catalog.set_config('search_path', '', false);
