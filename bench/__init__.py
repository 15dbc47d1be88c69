"""fastprop's asv benchmark suite (``benchmark_dir`` of ``asv.conf.json``); see bench/README.md.

asv imports this package, then every module in it, in each benchmark process: ``gradient``
(time and peak memory of one gradient), ``metrics`` (speedups, GFLOP/s, fraction of the GEMM
floor), ``compilation`` (first-call compile time), ``training`` (training), ``gpu_targets`` (the
GPU backends beside PyTorch) and ``common`` (what they share). ``check_dashboard`` is a script
and defines no benchmarks.
"""
