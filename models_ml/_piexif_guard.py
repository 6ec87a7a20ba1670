"""A bound on piexif: an IFD entry may not claim more values than its EXIF block holds.

piexif turns an entry of ``count`` values into ``struct.unpack("B" * count, ...)``, so a damaged
or hostile header that says 4,000,000,000 builds a 4 GB format string before it fails: one
photo can take a worker's memory (seen in the fuzz tests: 1.7 GB and 7 s for 240 bytes of
junk, and an out-of-memory kill). Importing this module makes piexif's reader check the count
first; such an entry reads as no values (which ``models_ml.exif`` drops as a wrong type), and
the entries beside it are still read.
"""

from __future__ import annotations

from typing import Any

import piexif._load as _piexif_load

#: Bytes per value of the TIFF types piexif unpacks value by value (TIFF 6.0 section 2);
#: ASCII (2) and UNDEFINED (7) are cut from the block as bytes, which costs nothing.
UNPACKED_SIZES = {1: 1, 3: 2, 4: 4, 5: 8, 6: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


class BoundedExifReader(_piexif_load._ExifReader):  # type: ignore[misc]
    """piexif's reader, refusing an entry whose values would run past the block's end."""

    def convert_value(self, val: tuple[Any, ...]) -> Any:
        value_type, count = val[0], val[1]
        size = UNPACKED_SIZES.get(value_type)
        if size is not None and count * size > len(self.tiftag or b""):
            return ()  # more values than the block holds: none of them can be real
        return super().convert_value(val)


# piexif.load() makes its reader by this module-level name
_piexif_load._ExifReader = BoundedExifReader
