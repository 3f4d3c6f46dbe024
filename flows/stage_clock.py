"""Each stage's wall time on the record (#30): whether its units were computed or reused, how long
it took, images per second, the device, and the flow process's peak RSS. Stored with the run
(``storage``'s ``stage_time`` table) once its id is known, after the encode stage.

A stage whose every unit was already stored records "reused" and the seconds it spent finding
that out, not a zero compute time. Shards computed on Dask workers count in the wall time; the
peak RSS is this process's (the workers' own is not collected)."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StageClock:
    device: str
    images: int  # the dataset's images (what images/s divides)
    rows: list[dict] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, total: int):
        """Time a stage of ``total`` units; set ``.computed`` on the yielded record to how many it computed."""
        record = {"stage": name, "units_total": total, "computed": 0}
        start = time.perf_counter()
        yield record
        seconds = time.perf_counter() - start
        computed = int(record.pop("computed"))
        precision = record.pop("precision", None)  # the image encoders' arithmetic (the encode stage)
        status = "reused" if computed == 0 and total else "computed" if computed >= total else "partly reused"
        self.rows.append({**record, "status": status, "units_computed": computed, "seconds": round(seconds, 3),
                          "images_per_s": round(self.images / seconds, 3) if computed and seconds > 0 and computed >= total else None,
                          "device": self.device, "precision": precision, "peak_rss_mb": round(peak_rss_mb(), 1)})


def peak_rss_mb() -> float:
    """This process's peak resident set, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
