"""Size units as libvirt reads them: single letters and IEC names are binary, SI names decimal.

The one table for both libvirt's scaled integers (<capacity unit='KiB'>) and sizes people type.
"""

UNIT_FACTORS: dict[str, int] = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
    "p": 1024**5, "pib": 1024**5, "pb": 1000**5,
    "e": 1024**6, "eib": 1024**6, "eb": 1000**6,
}
