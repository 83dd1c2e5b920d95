/** The f16 / bf16 conversions live in the compiler (compiler/ir/half.ts: the programs convert parameters and
 * feeds with them); the weight readers and writers use the same functions. */
export * from '../../compiler/ir/half';
