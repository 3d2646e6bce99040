insert into hook_runs (kind) values ('post');
