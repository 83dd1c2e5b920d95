/** CLIP's byte-level BPE tokenizer (openai/CLIP simple_tokenizer.py, transformers' CLIPTokenizer): lowercase,
 * collapse whitespace, split by CLIP's regex, map bytes to printable unicode, merge by rank with `</w>`
 * marking a word's end, wrap in <|startoftext|> … <|endoftext|> and pad to a fixed length.
 * `ClipTokenizer.fromFiles(vocab.json, merges.txt)` loads a real vocabulary; `ClipTokenizer.builtin()` is a
 * small deterministic one built the way CLIP builds its own (bytes, bytes+</w>, merges, the two specials).
 * Not done: ftfy text repair and HTML unescaping that the reference applies first. */
import fs from 'node:fs';
import { int, parseJson, record, SchemaError } from '../io/schema';

const PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
export const SOT = '<|startoftext|>';
export const EOT = '<|endoftext|>';

/** GPT-2's reversible byte → printable character map. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const out = new Array<string>(256);
  bs.forEach((b, i) => { out[b] = String.fromCodePoint(cs[i]); });
  return out;
}

/** The first merges of CLIP's own merges.txt, enough to exercise BPE in the built-in vocabulary. */
const BUILTIN_MERGES = ['i n', 't h', 'a n', 'r e', 'a r', 'e r', 'th e</w>', 'in g</w>', 'o u', 'o n', 's t', 'o r', 'e n', 'o n</w>', 'a l', 'a t',
  'e r</w>', 'i t', 'i n</w>', 't o</w>', 'r o', 'i s</w>', 'l e', 'i c', 'a t</w>', 'an d</w>', 'e d</w>', 'o f</w>', 'c h', 'o r</w>', 'e s</w>', 'i l'];

export interface TokenizerOptions {
  /** Sequence length after padding (77 for SDXL). */
  length?: number;
  /** Padding token: CLIP-L pads with <|endoftext|>, OpenCLIP bigG (SDXL's tokenizer_2) with "!" (id 0). */
  padToken?: string;
}

/** A tokenizer file (vocab.json) that cannot be read or is not token → non-negative integer id. */
export class TokenizerFileError extends Error {
  constructor(readonly file: string, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${detail}`, options);
    this.name = 'TokenizerFileError';
  }
}

export class ClipTokenizer {
  private readonly ranks: Map<string, number>;
  private readonly byteChars = bytesToUnicode();
  private readonly cache = new Map<string, string[]>();
  readonly sotId: number;
  readonly eotId: number;
  readonly padId: number;
  readonly length: number;

  constructor(readonly vocab: ReadonlyMap<string, number>, merges: readonly string[], opts: TokenizerOptions = {}) {
    this.ranks = new Map(merges.map((m, i) => [m, i]));
    const id = (t: string) => { const v = vocab.get(t); if (v === undefined) throw new Error(`tokenizer: '${t}' is not in the vocabulary`); return v; };
    this.sotId = id(SOT);
    this.eotId = id(EOT);
    this.padId = id(opts.padToken ?? EOT);
    this.length = opts.length ?? 77;
  }

  get vocabSize(): number { return this.vocab.size; }

  /** A standard vocab.json (token → id) and merges.txt (first line a version comment). */
  static fromFiles(vocabPath: string, mergesPath: string, opts: TokenizerOptions = {}): ClipTokenizer {
    let vocab: Map<string, number>;
    try {
      vocab = new Map(Object.entries(parseJson(fs.readFileSync(vocabPath, 'utf8'), record(int({ min: 0 })))));
    } catch (err) {
      const what = err instanceof SchemaError ? `not a vocab.json (token → id): ${err.message}` : `cannot read (${(err as NodeJS.ErrnoException).code ?? err})`;
      throw new TokenizerFileError(vocabPath, what, { cause: err });
    }
    const merges = fs.readFileSync(mergesPath, 'utf8').split('\n').filter((l, i) => l.trim() && !(i === 0 && l.startsWith('#')));
    return new ClipTokenizer(vocab, merges, opts);
  }

  /** 512 byte tokens, the built-in merges, then <|startoftext|> and <|endoftext|> (CLIP's construction). */
  static builtin(opts: TokenizerOptions = {}): ClipTokenizer {
    const chars = bytesToUnicode();
    const list = [...chars, ...chars.map((c) => `${c}</w>`), ...BUILTIN_MERGES.map((m) => m.replace(' ', '')), SOT, EOT];
    return new ClipTokenizer(new Map(list.map((t, i) => [t, i])), BUILTIN_MERGES, opts);
  }

  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const chars = [...token];
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
    while (word.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      const [a, b] = [word[best], word[best + 1]];
      const next: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i < word.length - 1 && word[i] === a && word[i + 1] === b) { next.push(a + b); i++; } else next.push(word[i]);
      }
      word = next;
    }
    this.cache.set(token, word);
    return word;
  }

  /** Token ids of the text, without start/end tokens. */
  encodeText(text: string): number[] {
    const clean = text.replace(/\s+/g, ' ').trim().toLowerCase();
    const ids: number[] = [];
    for (const m of clean.matchAll(PATTERN)) {
      const piece = m[0];
      if (piece === SOT || piece === EOT) { ids.push(this.vocab.get(piece)!); continue; }
      const mapped = [...new TextEncoder().encode(piece)].map((b) => this.byteChars[b]).join('');
      for (const t of this.bpe(mapped)) {
        const id = this.vocab.get(t);
        if (id === undefined) throw new Error(`tokenizer: BPE produced '${t}', which is not in the vocabulary`);
        ids.push(id);
      }
    }
    return ids;
  }

  /** [SOT, ...ids, EOT, pad...] truncated (keeping the EOT) to `length`. */
  encode(text: string): number[] {
    const body = this.encodeText(text).slice(0, this.length - 2);
    const ids = [this.sotId, ...body, this.eotId];
    while (ids.length < this.length) ids.push(this.padId);
    return ids;
  }

  /** The text back from ids (specials dropped, `</w>` as a space). */
  decode(ids: readonly number[]): string {
    const inv = new Map([...this.vocab].map(([k, v]) => [v, k]));
    const dec = new Map(this.byteChars.map((c, b) => [c, b]));
    const text = ids.filter((i) => i !== this.sotId && i !== this.eotId && i !== this.padId).map((i) => inv.get(i) ?? '').join('');
    const bytes: number[] = [];
    let out = '';
    const flush = () => { out += new TextDecoder().decode(Uint8Array.from(bytes)); bytes.length = 0; };
    for (let i = 0; i < text.length;) {
      if (text.startsWith('</w>', i)) { flush(); out += ' '; i += 4; continue; }
      const ch = String.fromCodePoint(text.codePointAt(i)!);
      bytes.push(dec.get(ch) ?? 63);
      i += ch.length;
    }
    flush();
    return out.trim();
  }
}
