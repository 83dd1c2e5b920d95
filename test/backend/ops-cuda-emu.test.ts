/** The op table through the CUDA back end on the CUDA emulator (the exact CUDA source nvcc compiles, run on the CPU
 * with memcheck, racecheck and initcheck), forward and backward, against the float64 oracle, with the same cases
 * and tolerances as the C++ back end. */
import { describeOpTable } from '../support/op-table';

describeOpTable('CUDA back end on the emulator (checked) vs the float64 oracle', { backend: 'cuda-emu', checks: true });
