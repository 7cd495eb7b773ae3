-- Runs once, when the PostgreSQL volume is created: the credit ledger's database beside Airflow's.
-- Alembic (ledger/migrations) creates its tables on first use.
CREATE DATABASE ledger;
