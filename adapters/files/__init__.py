"""The ``files`` adapter: a drop folder for CSV, JSON Lines and Avro files.

The source (``source``) reads the files other programs drop into a folder, once they
settle, checks every record against the resource schema (``formats``), and moves each
file to ``done/`` once its records are acknowledged, or to ``rejected/`` with its
reason. The sink (``sink``) writes each delivered batch as one Avro or JSON Lines file,
atomically (``folder``). Each module's docstring gives the details.
"""

from adapters.files.formats import FORMATS
from adapters.files.sink import FileSink
from adapters.files.source import DONE, REJECTED, FileSource

__all__ = ["DONE", "FORMATS", "REJECTED", "FileSink", "FileSource"]
