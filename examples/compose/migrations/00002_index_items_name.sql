-- +goose Up
CREATE INDEX items_name ON items (name);

-- +goose Down
DROP INDEX items_name;
