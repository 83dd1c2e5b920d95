// Emulator shim for <cuda_runtime.h>: the few runtime-API calls Kiln's host launcher makes are in kiln_emu.h.
#pragma once
