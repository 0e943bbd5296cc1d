"""Task families: ``minivqa`` (synthetic, CPU default), ``llava665k`` and ``datacomp`` (real, GPU)."""
