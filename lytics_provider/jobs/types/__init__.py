"""Registry of job types: each entry is a ``JobConfig`` subclass with a ``type`` literal."""

from __future__ import annotations

from lytics_provider.jobs.types.dotdigital import DOTDIGITAL_JOB_TYPES
from lytics_provider.jobs.types.files import FileServiceExportJob, FileServiceImportJob, MappSftpExportJob
from lytics_provider.jobs.types.icontact import IContactExportJob, IContactImportJob
from lytics_provider.jobs.types.warehouses import WAREHOUSE_JOB_TYPES

JOB_TYPES = (
    MappSftpExportJob,
    FileServiceExportJob,
    FileServiceImportJob,
    IContactImportJob,
    IContactExportJob,
    *DOTDIGITAL_JOB_TYPES,
    *WAREHOUSE_JOB_TYPES,
)
