/** The op table through the compiled C++ back end, forward and backward, against the float64 oracle. */
import { describeOpTable } from '../support/op-table';

describeOpTable('compiled CPU back end vs the float64 oracle');
