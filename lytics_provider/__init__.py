"""Apache Airflow provider for Lytics CDP integration jobs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
