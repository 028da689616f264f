# The Airflow image with this provider installed (used by docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends gnupg \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root pyproject.toml README.md /opt/lytics-provider/
COPY --chown=airflow:root lytics_provider /opt/lytics-provider/lytics_provider
RUN pip install --no-cache-dir "/opt/lytics-provider[amazon,google,azure,snowflake,postgres,celery,sandbox,segment,alerts,salesforce,databricks,zendesk]"
# The loopback stand-ins for a local trial: not part of the provider package, importable only by
# the compose file's lytics-sandbox service (PYTHONPATH=/opt/lytics-sandbox).
COPY --chown=airflow:root lytics_sandbox /opt/lytics-sandbox/lytics_sandbox
