"""The C library, loaded once, with the few functions ashvault calls typed.

The C library is already in the process: ``CDLL(None)`` opens it without ``ctypes.util.find_library``, which runs
``ldconfig -p`` in a subprocess. Calls through ``CDLL`` release the GIL.
"""

from __future__ import annotations

import ctypes

libc = ctypes.CDLL(None, use_errno=True)

memcmp = libc.memcmp
memcmp.restype = ctypes.c_int
memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]

fallocate = libc.fallocate
fallocate.restype = ctypes.c_int
fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
