"""Files in and out of Lytics: the file-drop export engine and the ingest engine into Lytics streams."""
