select fn_db_add_config_value('SyntheticKey', 'a,b,c', 'general');
insert into hook_runs (kind) values ('pre');
