"""The audience-sync engine: plan -> act in batches -> outcomes, rejects and a run report.

* ``plan``: the run-local plan file (planned work, finished steps, per-row outcomes);
* ``changes``: turns the snapshot diff into planned work (enters, exits, changes whose trigger
  fields moved), with the exit guard and tracked removals;
* ``act``: the checkpointed batch loop (one checkpoint per acknowledged batch, bad-row isolation
  by splitting a failed batch);
* ``ledger``: the per-job record of members the job added (only those are removed on exit);
* ``refs``: the destination's record id of each member a job added (removals without a lookup);
* ``destination``: the small interface a destination implements;
* ``identifiers``: normalising and SHA-256 hashing of emails and phone numbers;
* ``wait``: polling a destination's bulk job (or deferring to ``triggers.bulk_job``);
* ``report``: the typed run report and the rejects file.
"""
