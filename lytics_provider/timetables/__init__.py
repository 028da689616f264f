"""Timetables of Lytics jobs (registered with Airflow by ``lytics_provider.plugin``)."""
