CREATE OR REPLACE FUNCTION fn_item_label(v_id integer, v_name text)
RETURNS text AS $$
BEGIN
    RETURN v_id::text || ':' || v_name;
END; $$ LANGUAGE plpgsql IMMUTABLE;
