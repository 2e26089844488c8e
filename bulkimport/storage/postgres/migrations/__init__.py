"""The PostgreSQL storage's schema, as numbered ``NNN_name.sql`` files applied in order."""
