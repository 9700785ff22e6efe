import { BoundsError } from '../errors.js';

/** REQUIRES nothing; throws BoundsError unless [offset, offset+length) lies inside [0, size). */
export function checkRange(offset: number, length: number, size: number, path: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new BoundsError(`${path}: range [${offset}, ${offset}+${length}) is outside the region of ${size} bytes`);
  }
}
