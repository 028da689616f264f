"""Job alerts through the official Airflow notifiers (Slack, Microsoft Teams, e-mail)."""
