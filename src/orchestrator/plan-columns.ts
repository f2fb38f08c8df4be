/**
 * Per-item numbers of a plan, in typed arrays of fixed-size blocks: appending never copies (a
 * doubling array would hold its old and new copies at once, at the peak of the plan's memory),
 * and a million items cost 4 or 8 bytes each, not an object each.
 */

const BITS = 16;
const BLOCK = 1 << BITS;
const MASK = BLOCK - 1;

/** Float64 numbers, appended in order. */
export class F64Column {
  readonly #blocks: Float64Array[] = [];
  length = 0;

  push(value: number): void {
    const b = this.length >>> BITS;
    if (b === this.#blocks.length) this.#blocks.push(new Float64Array(BLOCK));
    this.#blocks[b]![this.length & MASK] = value;
    this.length++;
  }

  at(index: number): number {
    return this.#blocks[index >>> BITS]![index & MASK]!;
  }
}

/** Uint32 numbers, appended in order. */
export class U32Column {
  readonly #blocks: Uint32Array[] = [];
  length = 0;

  push(value: number): void {
    const b = this.length >>> BITS;
    if (b === this.#blocks.length) this.#blocks.push(new Uint32Array(BLOCK));
    this.#blocks[b]![this.length & MASK] = value;
    this.length++;
  }

  at(index: number): number {
    return this.#blocks[index >>> BITS]![index & MASK]!;
  }
}

/**
 * Item weights. Most jobs give every item the same weight (no `weight()`, or one that returns a
 * constant for these items): then the column holds one number, and becomes a real column only
 * at the first item that differs.
 */
export class WeightColumn {
  #constant = 1;
  #column: F64Column | undefined;
  length = 0;

  push(weight: number): void {
    if (!this.#column) {
      if (this.length === 0) this.#constant = weight;
      if (weight === this.#constant) {
        this.length++;
        return;
      }
      this.#column = new F64Column();
      for (let i = 0; i < this.length; i++) this.#column.push(this.#constant);
    }
    this.#column.push(weight);
    this.length++;
  }

  at(index: number): number {
    return this.#column ? this.#column.at(index) : this.#constant;
  }
}

/** Every this many lines, the index keeps a byte offset; the rest are summed from lengths. */
const SPARSE_BITS = 8;

/**
 * Where each spooled line lies: its byte length (4 bytes an item) and, every 256 lines, a byte
 * offset, so that any line's offset is at most 255 additions away.
 */
export class LineIndex {
  readonly #lengths = new U32Column();
  readonly #sparse = new F64Column();
  #bytes = 0;

  get count(): number {
    return this.#lengths.length;
  }

  /** Bytes of all lines. */
  get bytes(): number {
    return this.#bytes;
  }

  push(length: number): void {
    if ((this.#lengths.length & ((1 << SPARSE_BITS) - 1)) === 0) this.#sparse.push(this.#bytes);
    this.#lengths.push(length);
    this.#bytes += length;
  }

  lengthOf(index: number): number {
    return this.#lengths.at(index);
  }

  /** Byte offset of line `index`; `count` gives the total. */
  offsetOf(index: number): number {
    if (index >= this.#lengths.length) return this.#bytes;
    let offset = this.#sparse.at(index >>> SPARSE_BITS);
    for (let i = (index >>> SPARSE_BITS) << SPARSE_BITS; i < index; i++) offset += this.#lengths.at(i);
    return offset;
  }
}
