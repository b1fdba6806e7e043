-- Run once by the postgres image on an empty data volume: MLflow's tracking store lives in its own
-- database, next to qerberos's, owned by the same role (POSTGRES_USER).
CREATE DATABASE mlflow;
