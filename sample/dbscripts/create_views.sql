CREATE OR REPLACE VIEW items_view AS
    SELECT id, name, fn_item_label(id, name) AS label, created_at FROM items;
CREATE OR REPLACE VIEW items_summary AS
    SELECT count(*) AS items, max(name) AS last_name FROM items_view;
CREATE OR REPLACE VIEW upgrade_log_view AS
    SELECT version, applied_at FROM upgrade_log;
