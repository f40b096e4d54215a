/** The longest line either side may send: 1 MiB, the newline excluded. */
export const MAX_LINE_BYTES = 1024 * 1024;

/** A line longer than {@link MAX_LINE_BYTES} arrived (or is arriving). */
export class LineTooLongError extends Error {
  constructor(readonly length: number) {
    super(`a line of more than ${MAX_LINE_BYTES} bytes (${length} so far)`);
    this.name = "LineTooLongError";
  }
}

/**
 * Splits a byte stream into lines: `\n` ends a line, a `\r` before it is dropped, and each line is decoded as
 * UTF-8 only once it is whole (so a character split across reads stays intact). Empty lines are skipped.
 */
export class LineDecoder {
  #chunks: Buffer[] = [];
  #length = 0;

  /** Bytes held for a line that has not ended yet. */
  get buffered(): number {
    return this.#length;
  }

  /**
   * Adds `chunk` and returns the lines it completed. Throws {@link LineTooLongError} once a line exceeds
   * {@link MAX_LINE_BYTES} without its newline; the decoder is then unusable (drop the connection).
   */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) {
        break;
      }
      const length = this.#length + (newline - start);
      const tail = chunk.subarray(start, newline);
      const whole = this.#length === 0 ? tail : Buffer.concat([...this.#chunks, tail], length);
      this.#chunks = [];
      this.#length = 0;
      const end = whole.length > 0 && whole[whole.length - 1] === 0x0d ? whole.length - 1 : whole.length;
      if (end > MAX_LINE_BYTES) {
        throw new LineTooLongError(end);
      }
      if (end > 0) {
        lines.push(whole.toString("utf8", 0, end));
      }
      start = newline + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#chunks.push(rest);
      this.#length += rest.length;
      // One byte of slack for a `\r` that may still precede the newline.
      if (this.#length > MAX_LINE_BYTES + 1) {
        throw new LineTooLongError(this.#length);
      }
    }
    return lines;
  }
}
