// Philox uniform floats on the GPU: the same code as the CPU header, compiled as a device function.
#pragma once
#define KILN_HD __device__
#include "../cpu/philox.h"
