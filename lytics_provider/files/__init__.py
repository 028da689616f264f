"""Files between Lytics and partners.

The file-drop export engine (``export*``, ``transports``): a file drop is a layout
(:mod:`.export_layout`), a name template with the run's stamp (:mod:`.export_naming`), a
compression and optional PGP encryption, an optional trigger or manifest file written after the
data file (:mod:`.export_trigger`), and a transport that places the files atomically
(:mod:`.transports`: SFTP, S3, GCS, Azure Blob). :mod:`.export_operator` runs them as the
``deliver`` task of an export DAG.

The ingest engine into Lytics streams (``readers``, ``listing``, ``ingest``,
``ingest_operator``): one CSV/JSON-lines reader, one listing of S3, GCS and SFTP files, and a
stream writer that moves its checkpoint only after Lytics acknowledged a batch.
"""
