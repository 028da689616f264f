"""Deliver Lytics audiences to Dotdigital address books (Export Contacts, Export Multiple Audiences,
Export Modified Contacts, Remove Contacts).

Each operator runs as the ``deliver`` task after ``scan``: it diffs the run's snapshot against the
last committed one (everyone enters on the first run, on ``full_refresh`` or when the baseline is
gone), plans every send into a run-local SQLite file, then executes the plan:

* adds go through one bulk CSV import per address book and per file (files stay within the size
  limit Dotdigital documents for the import endpoint: 10 MB per address-book import, 50 MB per
  account-wide import), polled to completion;
  the import report and ``report-faults`` CSV are read back so each rejected row lands in the
  rejects file with Dotdigital's reason. With Trigger Join Actions each contact is added on its
  own (one call each), which is what fires the address book's join actions;
* exits are removed in bulk by contact id (the ID Field, else a per-job email -> id map kept fresh
  from the address book listing), or unsubscribed one by one. An exit whose email also enters the
  same address book in this run (a member whose identity key changed, see ``pipeline.identity``)
  is dropped from the plan: the contact stays;
* before anything is sent, the exit guard (``pipeline.exit_guard``) stops a run whose exits are
  more than ``max_exit_fraction`` of the previous audience (and at least ``exit_guard_min_exits``);
  the run param ``allow_mass_exit`` lets one run through, and a dry run reports the verdict;
* with Sync Status, every contact's outcome is written to the ``dotmailer_export_status`` stream.

Planning, checkpoints, tracked removals (exits only of contacts this job added), rejects and the
run report come from the sync engine (``lytics_provider.sync``); this module holds what is
Dotdigital's. Every step is recorded in the plan file, so a retried task reconnects to the bulk
import or bulk removal it already started instead of submitting a second one, and per-contact
steps continue after the last batch they finished. With ``deferrable`` the bulk-job waits run in
the triggerer (``triggers.bulk_job``). The run's snapshot becomes the next baseline only when the
``report`` task commits it, after this task succeeded.

The parts live in modules beside this one: ``dotdigital_delivery`` (the sync destination adapter
and the delivery operator), ``dotdigital_bulk_import``, ``dotdigital_removal``,
``dotdigital_per_contact`` and ``dotdigital_status`` (its steps), ``dotdigital_options`` (limits,
errors, options) and ``dotdigital_job_operators`` (one operator per job type); every name is
importable from here.
"""

from __future__ import annotations

from lytics_provider.operators.dotdigital_bulk_import import csv_row_bytes
from lytics_provider.operators.dotdigital_delivery import (
    REJECT_COLUMNS,
    DotdigitalDestination,
    _DotdigitalDeliveryOperator,
)
from lytics_provider.operators.dotdigital_job_operators import (
    DotdigitalExportContactsOperator,
    DotdigitalExportModifiedContactsOperator,
    DotdigitalRemoveContactsOperator,
)
from lytics_provider.operators.dotdigital_options import (
    EMAIL_TYPES,
    MAX_IMPORT_BYTES,
    OPT_IN_TYPES,
    DotdigitalConfigError,
    DotdigitalImportError,
    ExportOptions,
)
from lytics_provider.operators.dotdigital_per_contact import PER_CONTACT_BATCH, message_of
from lytics_provider.operators.dotdigital_removal import REMOVE_CHUNK, ContactIdMap
from lytics_provider.operators.dotdigital_status import STATUS_STREAM

__all__ = [
    "EMAIL_TYPES",
    "MAX_IMPORT_BYTES",
    "OPT_IN_TYPES",
    "PER_CONTACT_BATCH",
    "REJECT_COLUMNS",
    "REMOVE_CHUNK",
    "STATUS_STREAM",
    "ContactIdMap",
    "DotdigitalConfigError",
    "DotdigitalDestination",
    "DotdigitalExportContactsOperator",
    "DotdigitalExportModifiedContactsOperator",
    "DotdigitalImportError",
    "DotdigitalRemoveContactsOperator",
    "ExportOptions",
    "_DotdigitalDeliveryOperator",
    "csv_row_bytes",
    "message_of",
]
