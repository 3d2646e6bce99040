INSERT INTO items (name) VALUES ('alpha'), ('beta'), ('gamma');
INSERT INTO vdc_options (option_name, option_value, version, default_value)
VALUES ('SyntheticLevel', '1', 'general', '1');
