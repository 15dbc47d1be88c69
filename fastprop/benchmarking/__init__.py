"""The comparison harness behind ``fastprop compare`` and the asv suite in ``bench/``.

Not part of fastprop's API, and not imported by ``import fastprop``. One module per job:

- :mod:`.cases`: a case (batch x width x depth, dtype), the ``BxHxM`` notation, the presets;
- :mod:`.problems`: the network and arrays of a case, from a fixed seed;
- :mod:`.peers`: other libraries' gradients, and the GEMM floor;
- :mod:`.timing`: several calls timed side by side in interleaved rounds;
- :mod:`.comparison`: a comparison, checked then timed (``fastprop compare``);
- :mod:`.compile_ahead`: the kernels a case needs, compiled in new processes side by side;
- :mod:`.results`, :mod:`.report`, :mod:`.markdown`, :mod:`.plot`: what it found and writes;
- :mod:`.machine`: where it ran.
"""
