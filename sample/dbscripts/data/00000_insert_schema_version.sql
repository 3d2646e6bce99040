INSERT INTO schema_version (version, script, checksum, installed_by, ended_at, state, current, comment)
VALUES ('04010000', 'upgrade/04_01_0000_set_version.sql', '0', current_user, now(), 'INSTALLED', true, '');
