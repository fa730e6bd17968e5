-- uet's own database on the compose PostgreSQL (run once, when the data volume is created):
-- the telemetry of every run (see README, "Learning from runs"). Temporal keeps its own.
CREATE USER uet WITH PASSWORD 'uet';
CREATE DATABASE uet OWNER uet;
