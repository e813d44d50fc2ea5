"""The project: the engine's part of syncs.yml, its loader, model SQL, selection and dbt."""
